//! # multus-tests: the stand-in Kubernetes API server and the end-to-end harness
//!
//! [`apiserver::FakeApiServer`] is an in-memory API server faithful enough for kube-runtime
//! controllers, `kubectl` and our binaries to run against unmodified; its deliberate deviations
//! from the real server are listed in `tests/README.md`. [`harness`] starts processes, waits for
//! conditions and manages network namespaces for end-to-end tests.

pub mod apiserver;
pub mod harness;
