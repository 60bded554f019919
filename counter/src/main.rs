//! The counter app: a visit counter kept in a server-side session.

fn main() {}
