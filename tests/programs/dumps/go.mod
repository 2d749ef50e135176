module dumps

go 1.21
