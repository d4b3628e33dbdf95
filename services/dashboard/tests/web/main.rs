//! The dashboard's integration tests, one binary: the router without a browser (`oneshot`)
//! and the pages in real headless Chromium.

mod browser;
mod pump;
mod router;
