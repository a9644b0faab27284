//! The collector's time-series store: compressed chunks and a series index in sled.

pub mod align;
pub mod bitstream;
pub mod chunk;
pub mod encoding;

#[cfg(test)]
mod synthetic;
