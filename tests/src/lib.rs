//! Support for the end-to-end tests: network namespaces and processes the tests create and always clean up.
