//! TEMPORARY stand-in for the lead's io_uring driver (issue 14), so that `fs` compiles
//! before the driver lands on main. Dropped at the rebase.
pub(crate) mod op;
