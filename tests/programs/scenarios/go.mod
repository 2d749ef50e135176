module scenarios

go 1.21
