//! Training: losses (and, beside them, the data pipeline, optimizer and trainer).

pub mod loss;
