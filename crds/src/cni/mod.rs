//! CNI wire formats: network configurations, results, errors (CNI spec v1.1.0 and libcni).

pub mod capabilities;
