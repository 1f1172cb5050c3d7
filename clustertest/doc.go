// Package clustertest holds natter's failover tests: a three-node NATS
// cluster configured by gateway.InitCluster, stock nats-server and natter
// binaries built from this module, and chat clients over WebSocket, all as
// real processes on loopback. The tests kill and restart nodes and natter
// processes under load and check that no acknowledged message is lost or
// stored twice and that every room's seqs stay 1..N.
//
// They take minutes, so they sit behind the build tag "cluster":
//
//	go test -tags cluster -count=1 ./clustertest/
package clustertest
