//! The agent inbox in a real browser: headless Chromium driven over WebDriver (chromedriver)
//! logs in, opens the escalation, claims it, edits the suggested reply, sends and resolves.
//! `scripts/setup.sh` installs Debian's chromium and chromium-driver.

use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use parley_server::store::{EscalationStatus, MessageStatus, UserRole};

use parley_testkit::{KillOnDrop, free_port};

use crate::helpers::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

struct Driver {
    _child: KillOnDrop,
    port: u16,
    _profile: tempfile::TempDir,
}

async fn start_driver() -> Driver {
    assert!(
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
        "chromium and chromedriver are missing: run `make models` (scripts/setup.sh installs them)"
    );
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let driver = Driver {
        _child: KillOnDrop(child),
        port,
        _profile: tempfile::tempdir().unwrap(),
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start listening on {port}");
}

/// The text of the element with `id` once it contains `needle`: clicks navigate, and the old
/// page may still be the one answering for a moment.
async fn text_with(
    browser: &fantoccini::Client,
    id: &str,
    needle: &str,
) -> Result<String, fantoccini::error::CmdError> {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(element) = browser.find(Locator::Id(id)).await
            && let Ok(text) = element.text().await
        {
            if text.contains(needle) {
                return Ok(text);
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("#{id} never contained {needle:?}; last text: {last:?}");
}

#[tokio::test]
async fn an_agent_works_an_escalation_in_the_inbox() {
    let app = spawn_app(Channel::Simulator).await;
    let token = app.token("trailhead", "erin", UserRole::Agent).await;
    let customer = "+15550003001";
    let escalated = app
        .simulate(
            "trailhead",
            customer,
            "Can I talk to a real person about my order?",
        )
        .await;
    assert_eq!(escalated["escalated"], true, "{escalated}");
    let id = app.first_open_escalation("trailhead").await;

    let driver = start_driver().await;
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-quic", "--disable-dev-shm-usage",
                format!("--user-data-dir={}", driver._profile.path().display()),
            ]
        }),
    );
    parley_server::install_crypto_provider();
    let browser = ClientBuilder::rustls()
        .expect("TLS roots")
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("connecting to chromedriver");

    let result = async {
        // Not logged in: the inbox sends us to the login page; a wrong token is refused.
        browser.goto(&app.url("/inbox")).await?;
        assert!(browser.current_url().await?.path().ends_with("/inbox/login"));
        // Only then can the login form be used.
        browser
            .find(Locator::Id("token"))
            .await?
            .send_keys("pk_wrong")
            .await?;
        browser.find(Locator::Id("login")).await?.click().await?;
        text_with(&browser, "error", "not valid").await?;

        browser
            .find(Locator::Id("token"))
            .await?
            .send_keys(&token)
            .await?;
        browser.find(Locator::Id("login")).await?.click().await?;
        let queue = text_with(&browser, "queue", customer).await?;
        assert!(queue.contains("customer asked for a person"), "{queue}");

        browser
            .find(Locator::Id(&format!("open-{id}")))
            .await?
            .click()
            .await?;
        text_with(&browser, "transcript", "Can I talk to a real person").await?;
        browser.find(Locator::Id("claim")).await?.click().await?;
        text_with(&browser, "status", "claimed").await?;
        text_with(&browser, "assignee", "erin").await?;

        // The suggested reply is editable before sending.
        let draft = browser.find(Locator::Id("reply-body")).await?;
        draft.clear().await?;
        draft
            .send_keys("Hi, Erin here from Trailhead. What's your order number?")
            .await?;
        browser.find(Locator::Id("send")).await?.click().await?;
        text_with(&browser, "transcript", "Erin here from Trailhead").await?;

        browser.find(Locator::Id("resolve")).await?.click().await?;
        text_with(&browser, "empty", "Nothing waiting").await?;
        Ok::<(), fantoccini::error::CmdError>(())
    }
    .await;
    let _ = browser.close().await;
    result.expect("browser steps");

    // What the browser did is what the store holds, and the customer's phone got the reply.
    let escalation = app.state.service.store.escalation("trailhead", id).await.unwrap();
    assert_eq!(escalation.status, EscalationStatus::Resolved);
    let received = app.sent_to("trailhead", customer).await;
    let last = received.last().unwrap();
    assert_eq!(
        last.body,
        "Hi, Erin here from Trailhead. What's your order number?"
    );
    assert_eq!(last.status, MessageStatus::Delivered);
}
