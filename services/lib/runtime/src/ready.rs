//! [`Ready`]: "connected and subscribed", to wait on instead of sleeping.

use dtwin_bus::LinkState;
use std::time::Duration;
use tokio::sync::watch;

/// Whether a service has everything it needs to take input: each of its broker connections
/// connected and every subscription acknowledged. Cheap to clone; `dtwin up` waits on the
/// consumers' handles before it starts the twin, and tests wait on it before publishing.
#[derive(Debug, Clone)]
pub struct Ready {
    links: Vec<watch::Receiver<LinkState>>,
}

/// The service did not get ready in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not ready after {waited:?}: broker links {links:?}")]
pub struct NotReady {
    /// How long was waited.
    pub waited: Duration,
    /// Each link's state when the wait ended.
    pub links: Vec<LinkState>,
}

impl Ready {
    /// Ready when every one of `links` is.
    pub fn new(links: Vec<watch::Receiver<LinkState>>) -> Self {
        Self { links }
    }

    /// Ready at once (a service without broker links).
    pub fn always() -> Self {
        Self { links: Vec::new() }
    }

    /// This and `other` together.
    #[must_use]
    pub fn and(mut self, other: Ready) -> Self {
        self.links.extend(other.links);
        self
    }

    /// Whether every link is ready now.
    pub fn is_ready(&self) -> bool {
        self.links.iter().all(|l| l.borrow().is_ready())
    }

    /// Waits until every link is ready. A link whose connection has ended never gets ready,
    /// so this waits forever for it: use [`Ready::wait_for`] where that matters.
    pub async fn wait(&self) {
        for link in &self.links {
            let mut link = link.clone();
            if link.wait_for(LinkState::is_ready).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits at most `timeout` for every link to be ready.
    ///
    /// # Errors
    /// [`NotReady`] with each link's state when the time is up.
    pub async fn wait_for(&self, timeout: Duration) -> Result<(), NotReady> {
        tokio::time::timeout(timeout, self.wait())
            .await
            .map_err(|_| NotReady {
                waited: timeout,
                links: self.links.iter().map(|l| *l.borrow()).collect(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ready_waits_for_every_link() {
        let (a_tx, a) = watch::channel(LinkState::Down);
        let (b_tx, b) = watch::channel(LinkState::Connected);
        let ready = Ready::new(vec![a]).and(Ready::new(vec![b]));
        assert!(!ready.is_ready());
        let err = ready.wait_for(Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err.links, vec![LinkState::Down, LinkState::Connected]);
        a_tx.send_replace(LinkState::Subscribed);
        assert!(!ready.is_ready(), "one link is still only connected");
        let waiter = tokio::spawn({
            let ready = ready.clone();
            async move { ready.wait_for(Duration::from_secs(60)).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        b_tx.send_replace(LinkState::Subscribed);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert!(ready.is_ready() && Ready::always().is_ready());
    }
}
