//! The collector's time-series store: compressed chunks and a series index in sled.

pub mod align;
pub mod bitstream;
pub mod chunk;
pub mod config;
pub mod encoding;
pub mod error;
pub mod index;
mod select;

#[cfg(test)]
mod synthetic;
