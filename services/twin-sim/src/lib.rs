//! twin-sim
