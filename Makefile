# Convenience targets. The README's two commands need none of this.
.PHONY: build image test cluster-up cluster-down

build:
	go build -o build/sessiond-dev ./cmd/sessiond

# The image wraps a static binary (FROM scratch: nothing is pulled).
image:
	mkdir -p build/data
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o build/sessiond ./cmd/sessiond
	docker build -t sessiond:local .

test:
	go test -race ./...

cluster-up: image
	docker-compose -f docker-compose.cluster.yml up -d

cluster-down:
	docker-compose -f docker-compose.cluster.yml down -v
