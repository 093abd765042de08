package process

import (
	"testing"
	"testing/fstest"
)

func TestCgroupMemoryLimit(t *testing.T) {
	for name, tc := range map[string]struct {
		fs   fstest.MapFS
		want int64
	}{
		"v2 limit":    {fstest.MapFS{"memory.max": {Data: []byte("268435456\n")}}, 268435456},
		"v2 no limit": {fstest.MapFS{"memory.max": {Data: []byte("max\n")}}, 0},
		"v1 limit":    {fstest.MapFS{"memory/memory.limit_in_bytes": {Data: []byte("536870912\n")}}, 536870912},
		"v1 none":     {fstest.MapFS{"memory/memory.limit_in_bytes": {Data: []byte("9223372036854771712\n")}}, 0},
		"no cgroup":   {fstest.MapFS{}, 0},
		"garbage":     {fstest.MapFS{"memory.max": {Data: []byte("lots")}}, 0},
	} {
		if got := cgroupMemoryLimit(tc.fs); got != tc.want {
			t.Errorf("%s: %d, want %d", name, got, tc.want)
		}
	}
	if got := SetMemoryLimitFromCgroup(func(string) string { return "100MiB" }); got != 0 {
		t.Errorf("with GOMEMLIMIT set, a limit of %d was set", got)
	}
}
