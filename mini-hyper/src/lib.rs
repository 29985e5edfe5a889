//! hyper 1.x on the mini runtime (work in progress).
