module github.com/qodbridge/qodbridge

go 1.26
