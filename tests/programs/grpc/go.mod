// A real gRPC server + clients for SFGI's real-server trial (docs/ACCURACY.md, "Real servers").
// Its dependencies are Debian's gRPC-Go 1.33.3 sources (apt-get install golang-google-grpc-dev),
// which are built in GOPATH mode, offline, so this file is ignored by the build:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOTOOLCHAIN=local go build -o grpc-trial .
//
// (Module mode with `replace` lines to /usr/share/gocode/src does not work offline: the
// replaced modules' go.mod files require modules Debian does not ship, e.g. golang.org/x/term.)
module grpctrial

go 1.21
