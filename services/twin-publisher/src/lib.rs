//! twin-publisher
