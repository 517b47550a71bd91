// Package cluster holds the multi-host test of imagesvc (make cluster-test)
// and its throughput and capacity measurement (make capacity). Both build a
// small data centre on this one machine: a network namespace per "host" on
// a private bridge, each with its own address in 10.213.0.0/24, running the
// real binaries: MariaDB, versitygw (S3), three Redis hosts (a master, a
// replica and a Sentinel on each of the three), two API hosts and three
// worker hosts. Nothing crosses hosts over 127.0.0.1, and the test talks
// only to the addresses it made.
//
// The tests need root (ip netns, cgroups) and run only with CLUSTER_TEST=1
// (and CLUSTER_CAPACITY=1 for the measurement); `go test ./...` skips them.
// Everything they make (processes, namespaces, the bridge, the temporary
// directory) is removed at the end, when a test fails, and on SIGINT or
// SIGTERM; a run killed with SIGKILL leaves namespaces named isvcc-* that
// the next run removes first. See docs/scale-out.md.
package cluster
