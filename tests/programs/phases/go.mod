module phases

go 1.21
