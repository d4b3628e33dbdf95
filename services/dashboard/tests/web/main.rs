//! The dashboard's integration tests, one binary: the router without a browser (`oneshot`)
//! and the pages in real headless Chromium (`browser`, and `act`: advice followed, an alert
//! acknowledged and cleared with the alerter running).

mod act;
mod browser;
mod pump;
mod router;
