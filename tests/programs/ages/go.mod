module ages

go 1.21
