// Package examplescheck holds tests only: they keep the shipped examples
// true (Prometheus alert rules pass promtool and their unit tests, the
// Kubernetes fleet manifests have the shape the README promises).
package examplescheck
