//! `dtwin broker` (the embedded broker alone, with passwords and TLS for a plant network) and
//! `dtwin passwd` (add a user to its password file).

use anyhow::Context;
use clap::Args;
use dtwin_broker::auth::PasswordFile;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// `dtwin broker`.
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// Address to listen on (plain MQTT). Anything but loopback requires --password-file.
    #[arg(long, env = "DTWIN_LISTEN", default_value = dtwin_broker::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Password file (`user:argon2id-hash` lines, made with `dtwin passwd`); when given, every
    /// client must log in.
    #[arg(long, env = "DTWIN_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Also listen for MQTT over TLS on this address (e.g. 0.0.0.0:8883).
    #[arg(long, env = "DTWIN_TLS_LISTEN", requires_all = ["tls_cert", "tls_key"])]
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain of the TLS listener.
    #[arg(long, env = "DTWIN_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the TLS listener.
    #[arg(long, env = "DTWIN_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Seconds of backlog kept per subscribed topic filter, sized for 10,000 messages/s of
    /// 1 KiB (memory: ~10 MiB a second per busy filter): a subscriber that stalls longer than
    /// this loses QoS 1 messages.
    #[arg(long, env = "DTWIN_BACKLOG_S", default_value_t = dtwin_broker::DEFAULT_BACKLOG_S)]
    pub backlog_s: f64,
}

impl BrokerArgs {
    /// The broker's configuration: reads and checks the password file.
    ///
    /// # Errors
    /// An unreadable or malformed password file.
    pub fn config(&self) -> anyhow::Result<dtwin_broker::BrokerConfig> {
        let mut config = dtwin_broker::BrokerConfig::new(self.listen).with_backlog(
            self.backlog_s,
            dtwin_broker::DEFAULT_FLEET_RATE,
            dtwin_broker::DEFAULT_MESSAGE_BYTES,
        );
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading password file {}", path.display()))?;
            let file = PasswordFile::parse(&text)
                .with_context(|| format!("password file {}", path.display()))?;
            config.passwords = Some(Arc::new(file));
        }
        if let (Some(listen), Some(cert), Some(key)) =
            (self.tls_listen, &self.tls_cert, &self.tls_key)
        {
            config.tls = Some(dtwin_broker::TlsListener {
                listen,
                cert: cert.clone(),
                key: key.clone(),
            });
        }
        Ok(config)
    }
}

/// Runs the broker until Ctrl-C or SIGTERM.
///
/// # Errors
/// A bad configuration (anonymous access beyond loopback, missing TLS files) or a taken port.
pub async fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    Ok(dtwin_broker::run(config, crate::shutdown::on_signal()).await?)
}

/// `dtwin passwd`: adds or replaces a user in a password file, reading the password from
/// standard input (one line), so it never appears in the shell history or `ps`.
#[derive(Debug, Clone, Args)]
pub struct PasswdArgs {
    /// The password file (created when missing).
    #[arg(long, env = "DTWIN_PASSWORD_FILE")]
    pub file: PathBuf,
    /// The user to add or change.
    pub user: String,
}

/// Adds the user.
///
/// # Errors
/// A malformed existing file, a bad user name, no password on stdin, or a write error.
pub fn passwd(args: PasswdArgs) -> anyhow::Result<()> {
    let mut file = match std::fs::read_to_string(&args.file) {
        Ok(text)
            if text
                .lines()
                .any(|l| !l.trim().is_empty() && !l.trim().starts_with('#')) =>
        {
            PasswordFile::parse(&text).with_context(|| format!("{}", args.file.display()))?
        }
        Ok(_) => PasswordFile::default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => PasswordFile::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", args.file.display())),
    };
    eprintln!("password for {} (one line on standard input):", args.user);
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!password.is_empty(), "empty password");
    file.set(&args.user, password, rand::random())?;
    let tmp = args.file.with_extension("tmp");
    std::fs::write(&tmp, file.render()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.file)
        .with_context(|| format!("replacing {}", args.file.display()))?;
    eprintln!("{} saved in {}", args.user, args.file.display());
    Ok(())
}
