//! [`CommonConfig`]: what every service takes besides its own settings.

use dtwin_bus::Brokers;
use std::net::SocketAddr;

/// Settings every dtwin service shares. The CLI builds it once per subcommand (and once for
/// all services under `dtwin up`), so a flag means the same in every service.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// The broker: one URL, or the nodes of a cluster (the connections move to the next one
    /// when their link fails).
    pub broker: Brokers,
    /// Topic prefix.
    pub prefix: String,
    /// MQTT client id; `None`: the service's own default ([`CommonConfig::client_id`]).
    pub client_id: Option<String>,
    /// This instance's name when several instances of one service share the fleet
    /// (scale-out by rendezvous hashing, see `dtwin-cluster`); `None`: the only instance.
    pub instance: Option<String>,
    /// Subscribe to the service's shared input as a member of this MQTT shared-subscription
    /// group (`$share/{group}/...`; scale-out by the broker); excludes `instance`.
    pub share_group: Option<String>,
    /// Serve `/metrics` and `/healthz` here; `None`: no endpoint of its own.
    pub metrics_listen: Option<SocketAddr>,
    /// Add the metrics to this shared endpoint instead (`dtwin up` serves every in-process
    /// service on one port); takes precedence over `metrics_listen`.
    pub metrics_shared: Option<dtwin_obs::Exposition>,
}

impl CommonConfig {
    /// Defaults for a broker at `broker`: prefix `dtwin/v1`, the service's own client id, a
    /// single instance, no metrics endpoint.
    pub fn new(broker: impl Into<Brokers>) -> Self {
        Self {
            broker: broker.into(),
            prefix: dtwin_schema::DEFAULT_PREFIX.to_owned(),
            client_id: None,
            instance: None,
            share_group: None,
            metrics_listen: None,
            metrics_shared: None,
        }
    }

    /// The MQTT client id `service` connects with: the one configured, else `dtwin-{service}`,
    /// `dtwin-{service}-{instance}` for a named instance (two instances of one service need
    /// distinct ids, or the broker drops one for the other), or a random suffix for a member of
    /// a share group (which has no name of its own).
    pub fn client_id(&self, service: &str) -> String {
        let base = format!("dtwin-{service}");
        match (&self.client_id, &self.instance, &self.share_group) {
            (Some(id), _, _) => id.clone(),
            (None, Some(name), _) => format!("{base}-{name}"),
            (None, None, Some(_)) => dtwin_bus::unique_client_id(&base),
            (None, None, None) => base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtwin_bus::BrokerUrl;

    fn common() -> CommonConfig {
        CommonConfig::new(BrokerUrl::new("127.0.0.1", 1883))
    }

    #[test]
    fn client_ids_follow_one_rule_for_every_service() {
        let mut c = common();
        assert_eq!(c.client_id("feature"), "dtwin-feature");
        c.instance = Some("a".into());
        assert_eq!(c.client_id("inference"), "dtwin-inference-a");
        c.client_id = Some("mine".into());
        assert_eq!(c.client_id("inference"), "mine", "an explicit id wins");
        let mut s = common();
        s.share_group = Some("g".into());
        let (x, y) = (s.client_id("feature"), s.client_id("feature"));
        assert!(x.starts_with("dtwin-feature-") && x != y, "{x} {y}");
    }
}
