//! Runs one command: connects to the node, makes the call(s) and writes the output.

use std::future::Future;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sae_proto::v1::management_client::ManagementClient;
use sae_proto::v1::{ListSubscribersRequest, ListSubscribersResponse};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;

use crate::cli::Cli;
use crate::error::CtlError;
use crate::output::{self, Change};
use crate::request::{self, Call};

/// Runs the command of `cli`, writing its output to `out` and notes (paging) to `err`.
pub async fn run(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), CtlError> {
    // Everything that can be wrong on the command line is found before connecting.
    let call = request::build(&cli.command)?;
    let server = request::server_uri(&cli.server)?;
    let channel = connect_channel(&server, cli.timeout).await?;
    let mut session = Session {
        client: ManagementClient::new(channel.clone()),
        channel,
        server,
        timeout: cli.timeout,
        json: cli.json,
    };
    let result = session.call(call, out, err).await;
    out.flush()?;
    result
}

/// Connects to the management API: the server is unreachable when this fails.
pub async fn connect(
    server: &str,
    timeout: Duration,
) -> Result<ManagementClient<Channel>, CtlError> {
    Ok(ManagementClient::new(
        connect_channel(server, timeout).await?,
    ))
}

/// Connects to the node's gRPC server (management API, health): the server is unreachable
/// when this fails.
pub async fn connect_channel(server: &str, timeout: Duration) -> Result<Channel, CtlError> {
    let endpoint = Endpoint::from_shared(server.to_owned())
        .map_err(|e| CtlError::Usage(format!("--server {server:?}: {e}")))?
        .connect_timeout(timeout);
    let unreachable = |detail: String| CtlError::Unreachable {
        server: server.to_owned(),
        detail,
    };
    let channel = tokio::time::timeout(timeout, endpoint.connect())
        .await
        .map_err(|_| unreachable(format!("no connection within {} s", timeout.as_secs_f64())))?
        .map_err(|e| unreachable(error_chain(&e)))?;
    Ok(channel)
}

/// This host's clock as Unix milliseconds (leases are shown as what is left of them).
fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An error and its sources: `transport error: tcp connect error: Connection refused (os error
/// 111)`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

struct Session {
    client: ManagementClient<Channel>,
    /// The connection `client` uses, for the other services (health).
    channel: Channel,
    server: String,
    timeout: Duration,
    json: bool,
}

/// A request with the deadline sent to the server too.
fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(timeout);
    r
}

impl Session {
    /// Waits for the answer of a unary call, at most `--timeout`.
    async fn answer<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CtlError> {
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(CtlError::Timeout(self.timeout)),
            Ok(Err(status)) => Err(CtlError::from_status(status, &self.server)),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }

    /// Writes a response: JSON, or the text made by `human`.
    fn show<T: serde::Serialize>(
        &self,
        out: &mut dyn Write,
        response: &T,
        human: impl FnOnce(&T) -> String,
    ) -> Result<(), CtlError> {
        let text = if self.json {
            output::json(response)
        } else {
            human(response)
        };
        out.write_all(text.as_bytes())?;
        Ok(())
    }

    async fn call(
        &mut self,
        call: Call,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<(), CtlError> {
        let t = self.timeout;
        match call {
            Call::Status(r) => {
                let mut c = self.client.clone();
                let s = self.answer(c.get_node_status(request(r, t))).await?;
                self.show(out, &s, output::node_status)
            }
            Call::ListServices(r) => {
                let mut c = self.client.clone();
                let s = self.answer(c.list_services(request(r, t))).await?;
                self.show(out, &s, |s| output::services(&s.services))
            }
            Call::GetService(r) => {
                let mut c = self.client.clone();
                let s = self.answer(c.get_service(request(r, t))).await?;
                self.show(out, &s, output::service)
            }
            Call::PutServices(requests) => {
                let single = requests.len() == 1;
                for r in requests {
                    let mut c = self.client.clone();
                    let s = self.answer(c.put_service(request(r, t))).await?;
                    self.show(out, &s, |s| {
                        let sentence = format!("service {} stored\n", s.name);
                        if single {
                            format!("{sentence}{}", output::service(s))
                        } else {
                            sentence
                        }
                    })?;
                }
                Ok(())
            }
            Call::DeleteService(r) => {
                let name = r.name.clone();
                let mut c = self.client.clone();
                let s = self.answer(c.delete_service(request(r, t))).await?;
                self.show(out, &s, |_| format!("service {name} deleted\n"))
            }
            Call::ListRules(r) => {
                let mut c = self.client.clone();
                let s = self.answer(c.list_rules(request(r, t))).await?;
                self.show(out, &s, |s| output::rules(&s.rules))
            }
            Call::PutRules(requests) => {
                let single = requests.len() == 1;
                for r in requests {
                    let mut c = self.client.clone();
                    let s = self.answer(c.put_rule(request(r, t))).await?;
                    self.show(out, &s, |s| {
                        let sentence = format!("rule {} stored\n", s.name);
                        if single {
                            format!("{sentence}{}", output::rule(s))
                        } else {
                            sentence
                        }
                    })?;
                }
                Ok(())
            }
            Call::DeleteRule(r) => {
                let name = r.name.clone();
                let mut c = self.client.clone();
                let s = self.answer(c.delete_rule(request(r, t))).await?;
                self.show(out, &s, |_| format!("rule {name} deleted\n"))
            }
            Call::ListSubscribers { request, all } => {
                let with_node = request.cluster;
                let page = if all {
                    self.all_subscribers(request).await?
                } else {
                    let mut c = self.client.clone();
                    self.answer(c.list_subscribers(self::request(request, t)))
                        .await?
                };
                self.show(out, &page, |p| {
                    output::subscribers(&p.subscribers, with_node)
                })?;
                if !self.json {
                    writeln!(err, "{}", output::subscribers_footer(&page))?;
                }
                Ok(())
            }
            Call::Resolve(r) => {
                let mut c = self.client.clone();
                let s = self.answer(c.resolve(request(r, t))).await?;
                self.show(out, &s, output::resolution)
            }
            Call::ListBindings(r) => {
                let mut c = self.client.clone();
                let s = self.answer(c.list_bindings(request(r, t))).await?;
                self.show(out, &s, output::bindings)?;
                if !self.json {
                    writeln!(err, "{} of {} bindings", s.bindings.len(), s.total)?;
                }
                Ok(())
            }
            Call::Evaluate(r) => {
                let mut c = self.client.clone();
                let s = self.answer(c.evaluate_expression(request(r, t))).await?;
                self.show(out, &s, output::evaluation)
            }
            Call::GetSubscriber(r) => {
                let mut c = self.client.clone();
                let s = self.answer(c.get_subscriber(request(r, t))).await?;
                self.show(out, &s, output::subscriber)
            }
            Call::Activate(r) => {
                let mut c = self.client.clone();
                let s = self.answer(c.activate_service(request(r, t))).await?;
                self.show(out, &s, |s| output::service_change(s, Change::Activate))?;
                changed(s.success, s.result_code)
            }
            Call::Deactivate(r) => {
                let mut c = self.client.clone();
                let s = self.answer(c.deactivate_service(request(r, t))).await?;
                self.show(out, &s, |s| output::service_change(s, Change::Deactivate))?;
                changed(s.success, s.result_code)
            }
            Call::Logout(r) => {
                let mut c = self.client.clone();
                let s = self.answer(c.logout(request(r, t))).await?;
                self.show(out, &s, output::logout)?;
                changed(output::is_success(s.result_code), s.result_code)
            }
            Call::CollectUsage(r) => {
                let mut c = self.client.clone();
                let s = self.answer(c.collect_usage(request(r, t))).await?;
                self.show(out, &s, output::collect_usage)?;
                changed(output::is_success(s.result_code), s.result_code)
            }
            Call::ListUsage(r) => {
                let mut c = self.client.clone();
                let s = self.answer(c.list_usage_records(request(r, t))).await?;
                self.show(out, &s, |s| output::usage(&s.records))
            }
            Call::Resync(r) => {
                let router = r.router.clone();
                let mut c = self.client.clone();
                let s = self.answer(c.resync_router(request(r, t))).await?;
                self.show(out, &s, |s| output::resync(&router, s))?;
                changed(output::is_success(s.result_code), s.result_code)
            }
            Call::Aggregates(id) => {
                let mut c = self.client.clone();
                let request = request(sae_proto::v1::ListAggregatesRequest {}, t);
                let s = self.answer(c.list_aggregates(request)).await?;
                match id {
                    None => self.show(out, &s, |s| output::aggregates(&s.aggregates)),
                    Some(id) => match s.aggregates.iter().find(|a| a.id == id) {
                        Some(a) => self.show(out, a, output::aggregate),
                        None => Err(CtlError::Status(tonic::Status::not_found(format!(
                            "no aggregate session {id} on this node"
                        )))),
                    },
                }
            }
            Call::CopsConnections(r) => {
                let mut c = self.client.clone();
                let s = self.answer(c.list_cops_connections(request(r, t))).await?;
                self.show(out, &s, |s| output::cops_connections(&s.connections))
            }
            Call::AdmissionBudgets(r) => {
                let mut c = self.client.clone();
                let s = self.answer(c.list_admission_budgets(request(r, t))).await?;
                self.show(out, &s, |s| output::admission_budgets(&s.budgets))
            }
            Call::ControlUsage(r) => {
                let asked = r.clone();
                let mut c = self.client.clone();
                let s = self.answer(c.control_usage(request(r, t))).await?;
                self.show(out, &s, |s| output::control_usage(&asked, s))
            }
            Call::Cluster {
                request: r,
                routers_only,
            } => {
                let mut c = self.client.clone();
                let s = self.answer(c.get_cluster(request(r, t))).await?;
                let now = now_unix_ms();
                if routers_only {
                    // JSON: the routers of the status, in the same shape as `cluster`.
                    let routers = serde_json::json!({ "routers": s.routers });
                    self.show(out, &routers, |_| output::cluster_routers(&s.routers, now))
                } else {
                    self.show(out, &s, |s| output::cluster(s, now))
                }
            }
            Call::MoveRouter(r) => {
                let mut c = self.client.clone();
                let s = self.answer(c.move_router(request(r, t))).await?;
                self.show(out, &s, |s| output::router_owner(s, now_unix_ms()))
            }
            Call::RemoveNode(r) => {
                let node_id = r.node_id;
                let mut c = self.client.clone();
                let s = self.answer(c.remove_node(request(r, t))).await?;
                self.show(out, &s, |_| output::node_removed(node_id))
            }
            Call::Health(r) => {
                let service = r.service.clone();
                let mut c = HealthClient::new(self.channel.clone());
                let s = self.answer(c.check(request(r, t))).await?;
                let health = output::Health::new(&service, s.status);
                self.show(out, &health, output::health)?;
                if health.serving() {
                    Ok(())
                } else {
                    Err(CtlError::NotServing(health.status))
                }
            }
            Call::Watch(r) => {
                // No deadline on the stream itself: only on its start.
                let mut c = self.client.clone();
                let mut stream = self.answer(c.watch_events(r)).await?;
                let interrupted = tokio::signal::ctrl_c();
                tokio::pin!(interrupted);
                loop {
                    tokio::select! {
                        message = stream.message() => match message {
                            Ok(Some(event)) => {
                                let line = if self.json {
                                    output::json_line(&event)
                                } else {
                                    output::event(&event)
                                };
                                out.write_all(line.as_bytes())?;
                                out.flush()?;
                            }
                            Ok(None) => return Ok(()),
                            Err(status) => return Err(CtlError::from_status(status, &self.server)),
                        },
                        _ = &mut interrupted => return Ok(()),
                    }
                }
            }
        }
    }

    /// Every page of a subscriber listing, as one response.
    async fn all_subscribers(
        &mut self,
        mut r: ListSubscribersRequest,
    ) -> Result<ListSubscribersResponse, CtlError> {
        let mut all = ListSubscribersResponse::default();
        loop {
            let mut c = self.client.clone();
            let page = self
                .answer(c.list_subscribers(request(r.clone(), self.timeout)))
                .await?;
            all.subscribers.extend(page.subscribers);
            all.total = page.total;
            if page.next_page_token.is_empty() {
                return Ok(all);
            }
            if page.next_page_token == r.page_token {
                return Err(CtlError::Status(tonic::Status::internal(format!(
                    "the server returned the same page token {:?} twice",
                    page.next_page_token
                ))));
            }
            r.page_token = page.next_page_token;
        }
    }
}

/// The outcome of a change the router answered: an error (exit 1) when it refused.
fn changed(success: bool, result_code: u32) -> Result<(), CtlError> {
    if success {
        Ok(())
    } else if result_code == 0 {
        Err(CtlError::Router("the router did not answer".into()))
    } else {
        Err(CtlError::Router(format!(
            "the router refused: Result-Code {}",
            output::result_code(result_code)
        )))
    }
}
