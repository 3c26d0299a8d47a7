//! Atelier relay library.

pub mod ws;
