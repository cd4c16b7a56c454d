//! The Kubernetes API as the observer reads it (the `kube` crate, honouring KUBECONFIG): nodes and
//! their Ready condition, `kubeadm-config` (kube-system) and `cluster-info` (kube-public).
//!
//! The parsers are pure; [`KubeApi`] does the reading, each call bounded by
//! [`KUBE_REQUEST_TIMEOUT_S`], and refuses an API server off loopback when the guard is on.

use crate::guard::Guard;
use crate::ExecError;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use plan_model::topology::Topology;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// Bound on connecting to the API server.
pub const KUBE_CONNECT_TIMEOUT_S: u64 = 5;
/// Bound on one API request, connection included.
pub const KUBE_REQUEST_TIMEOUT_S: u64 = 15;

/// A node as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCondition {
    pub name: String,
    /// The `Ready` condition's status (`True`, `False`, `Unknown`); `None` when it has none.
    pub ready: Option<String>,
}

impl NodeCondition {
    pub fn is_ready(&self) -> bool {
        self.ready.as_deref() == Some("True")
    }
}

/// What `kubeadm-config`'s ClusterConfiguration says about the endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeadmEndpoint {
    pub control_plane_endpoint: Option<String>,
    pub cert_sans: Vec<String>,
}

impl KubeadmEndpoint {
    /// The model's `kubeadm_endpoint`: controlPlaneEndpoint is the VIP (or its FQDN) and the certSANs
    /// carry both the VIP and the FQDN.
    pub fn on_vip(&self, t: &Topology) -> bool {
        let endpoint = &t.scenario.control_plane_endpoint;
        let vip = endpoint.vip.to_string();
        let host = self.control_plane_endpoint.as_deref().map(|e| e.rsplit_once(':').map_or(e, |(h, _)| h));
        let endpoint_ok = host.is_some_and(|h| h == vip || h == endpoint.fqdn);
        endpoint_ok && self.cert_sans.contains(&vip) && self.cert_sans.contains(&endpoint.fqdn)
    }

    pub fn evidence(&self) -> String {
        format!(
            "controlPlaneEndpoint: {}, certSANs: [{}]",
            self.control_plane_endpoint.as_deref().unwrap_or("(none)"),
            self.cert_sans.join(", ")
        )
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfiguration {
    control_plane_endpoint: Option<String>,
    api_server: Option<ApiServer>,
}

#[derive(Deserialize)]
struct ApiServer {
    #[serde(rename = "certSANs", default)]
    cert_sans: Vec<String>,
}

/// Parses `kubeadm-config`'s `ClusterConfiguration` key.
///
/// # Errors
/// The YAML does not parse.
pub fn parse_cluster_configuration(yaml: &str) -> Result<KubeadmEndpoint, String> {
    let c: ClusterConfiguration = serde_yaml_ng::from_str(yaml).map_err(|e| format!("ClusterConfiguration: {e}"))?;
    Ok(KubeadmEndpoint {
        control_plane_endpoint: c.control_plane_endpoint,
        cert_sans: c.api_server.map(|a| a.cert_sans).unwrap_or_default(),
    })
}

#[derive(Deserialize)]
struct ClusterInfoKubeconfig {
    #[serde(default)]
    clusters: Vec<NamedCluster>,
}

#[derive(Deserialize)]
struct NamedCluster {
    cluster: ClusterEntry,
}

#[derive(Deserialize)]
struct ClusterEntry {
    server: Option<String>,
}

/// The server of `cluster-info`'s `kubeconfig` key (what `kubeadm join` discovers).
///
/// # Errors
/// The YAML does not parse.
pub fn parse_cluster_info(kubeconfig: &str) -> Result<Option<String>, String> {
    let k: ClusterInfoKubeconfig = serde_yaml_ng::from_str(kubeconfig).map_err(|e| format!("cluster-info kubeconfig: {e}"))?;
    Ok(k.clusters.into_iter().find_map(|c| c.cluster.server))
}

/// Where the kubeconfig comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeconfigSource {
    /// `$KUBECONFIG`, else `~/.kube/config`, as kubectl does.
    Environment,
    File(std::path::PathBuf),
}

/// A client of one cluster's API.
pub struct KubeApi {
    runtime: tokio::runtime::Runtime,
    pub(crate) client: kube::Client,
    /// The API server URL, for messages.
    pub server: String,
}

fn kube_error(what: &str, e: impl std::fmt::Display) -> ExecError {
    ExecError::Kube { what: what.to_string(), reason: crate::redact::redact(&e.to_string()) }
}

/// `e` and its causes, each once: kube's own text stops at "client error (Connect)", the cause
/// ("Connection refused") is further down the chain.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text.push_str(&format!(": {said}"));
        }
        cause = c.source();
    }
    text
}

impl KubeApi {
    /// Reads the kubeconfig and makes a client; connects to nothing yet.
    ///
    /// # Caveats
    /// With the guard on, the API server must be a loopback IP literal (or `localhost`) and no
    /// `proxy-url` may be set: the check runs before any connection.
    ///
    /// # Errors
    /// [`ExecError::Kube`] (no or bad kubeconfig), [`ExecError::NotLoopback`].
    pub fn connect(source: &KubeconfigSource, guard: Guard) -> Result<KubeApi, ExecError> {
        KubeApi::connect_with(read_kubeconfig(source)?, guard)
    }

    /// [`KubeApi::connect`] with a kubeconfig already read.
    ///
    /// # Errors
    /// As [`KubeApi::connect`].
    pub fn connect_with(kubeconfig: kube::config::Kubeconfig, guard: Guard) -> Result<KubeApi, ExecError> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| kube_error("tokio runtime", e))?;
        let options = kube::config::KubeConfigOptions::default();
        if guard.loopback_only {
            refuse_credential_plugins(&kubeconfig)?;
        }
        let mut config =
            runtime.block_on(kube::Config::from_custom_kubeconfig(kubeconfig, &options)).map_err(|e| kube_error("kubeconfig", e))?;
        let server = config.cluster_url.to_string();
        guard.check_url("Kubernetes API server", &server)?;
        if let Some(proxy) = &config.proxy_url {
            if guard.loopback_only {
                // kube takes the proxy from the kubeconfig's proxy-url, else HTTPS_PROXY/https_proxy.
                return Err(ExecError::NotLoopback {
                    destination: format!("Kubernetes API server {server}"),
                    why: format!(": requests would go through the proxy {proxy} (kubeconfig proxy-url or HTTPS_PROXY)"),
                });
            }
        }
        config.connect_timeout = Some(Duration::from_secs(KUBE_CONNECT_TIMEOUT_S));
        config.read_timeout = Some(Duration::from_secs(KUBE_REQUEST_TIMEOUT_S));
        config.write_timeout = Some(Duration::from_secs(KUBE_REQUEST_TIMEOUT_S));
        let client = {
            let _entered = runtime.enter();
            kube::Client::try_from(config).map_err(|e| kube_error("client", e))?
        };
        Ok(KubeApi { runtime, client, server })
    }

    /// [`KubeApi::connect`] with a kubeconfig file.
    ///
    /// # Errors
    /// As [`KubeApi::connect`].
    pub fn from_file(path: &Path, guard: Guard) -> Result<KubeApi, ExecError> {
        KubeApi::connect(&KubeconfigSource::File(path.to_path_buf()), guard)
    }
}

/// The kubeconfig `source` names, read now.
///
/// # Errors
/// [`ExecError::Kube`] (no or bad kubeconfig).
pub fn read_kubeconfig(source: &KubeconfigSource) -> Result<kube::config::Kubeconfig, ExecError> {
    match source {
        KubeconfigSource::Environment => kube::config::Kubeconfig::read(),
        KubeconfigSource::File(path) => kube::config::Kubeconfig::read_from(path),
    }
    .map_err(|e| match e {
        // kube words this as `from '"/root/.kube/config"'` (a Debug path in quotes): name the
        // path plainly, with the OS's reason.
        kube::config::KubeconfigError::ReadConfig(io, path) => kube_error(&format!("kubeconfig {}", path.display()), io),
        other => kube_error("kubeconfig", other),
    })
}

/// Refuses a kubeconfig with an `exec` credential plugin or an `auth-provider` for any user: the
/// client would run a program (or dial an identity provider) that the guard cannot see into.
fn refuse_credential_plugins(kubeconfig: &kube::config::Kubeconfig) -> Result<(), ExecError> {
    for named in &kubeconfig.auth_infos {
        let Some(user) = &named.auth_info else { continue };
        let plugin = match (&user.exec, &user.auth_provider) {
            (Some(exec), _) => format!("an exec credential plugin ({})", exec.command.as_deref().unwrap_or("?")),
            (None, Some(provider)) => format!("the auth-provider {}", provider.name),
            (None, None) => continue,
        };
        return Err(ExecError::NotLoopback {
            destination: format!("Kubernetes credentials of user {}", named.name),
            why: format!(": the kubeconfig runs {plugin}, which may reach anything"),
        });
    }
    Ok(())
}

impl KubeApi {
    pub(crate) fn bounded<T>(
        &self,
        what: &str,
        request: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ExecError> {
        self.runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(KUBE_REQUEST_TIMEOUT_S), request).await })
            .map_err(|_| kube_error(what, format!("no answer from {} within {KUBE_REQUEST_TIMEOUT_S} s", self.server)))?
            .map_err(|e| kube_error(what, with_causes(&e)))
    }

    /// Every node and its Ready condition.
    ///
    /// # Errors
    /// [`ExecError::Kube`].
    pub fn nodes(&self) -> Result<Vec<NodeCondition>, ExecError> {
        let api: kube::Api<Node> = kube::Api::all(self.client.clone());
        let list = self.bounded("list nodes", api.list(&kube::api::ListParams::default()))?;
        Ok(list
            .items
            .into_iter()
            .map(|node| NodeCondition {
                name: node.metadata.name.unwrap_or_default(),
                ready: node
                    .status
                    .and_then(|s| s.conditions)
                    .and_then(|conditions| conditions.into_iter().find(|c| c.type_ == "Ready"))
                    .map(|c| c.status),
            })
            .collect())
    }

    pub(crate) fn config_map_key(&self, namespace: &str, name: &str, key: &str) -> Result<Option<String>, ExecError> {
        let api: kube::Api<ConfigMap> = kube::Api::namespaced(self.client.clone(), namespace);
        let map = self.bounded(&format!("get configmap {namespace}/{name}"), api.get_opt(name))?;
        Ok(map.and_then(|m| m.data).and_then(|mut d| d.remove(key)))
    }

    /// `kubeadm-config`'s endpoint and SANs; `None` when the ConfigMap or its key is missing.
    ///
    /// # Errors
    /// [`ExecError::Kube`], also for a ClusterConfiguration that does not parse.
    pub fn kubeadm_endpoint(&self) -> Result<Option<KubeadmEndpoint>, ExecError> {
        match self.config_map_key("kube-system", "kubeadm-config", "ClusterConfiguration")? {
            Some(yaml) => parse_cluster_configuration(&yaml).map(Some).map_err(|e| kube_error("kubeadm-config", e)),
            None => Ok(None),
        }
    }

    /// `cluster-info`'s server; `None` when the ConfigMap, its key or a server is missing.
    ///
    /// # Errors
    /// [`ExecError::Kube`].
    pub fn cluster_info_server(&self) -> Result<Option<String>, ExecError> {
        match self.config_map_key("kube-public", "cluster-info", "kubeconfig")? {
            Some(yaml) => parse_cluster_info(&yaml).map_err(|e| kube_error("cluster-info", e)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan_model::validate::parse_scenario;

    #[test]
    fn a_missing_kubeconfig_names_its_path_plainly() {
        let path = std::path::PathBuf::from("/nonexistent/plan-test/kubeconfig");
        let error = read_kubeconfig(&KubeconfigSource::File(path)).unwrap_err().to_string();
        assert!(error.starts_with("kubernetes kubeconfig /nonexistent/plan-test/kubeconfig: "), "{error}");
        assert!(!error.contains('"') && !error.contains('\''), "no quoted path: {error}");
    }

    #[test]
    fn an_error_says_its_causes_once_each() {
        #[derive(Debug)]
        struct Connect(std::io::Error);
        impl std::fmt::Display for Connect {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "client error (Connect)")
            }
        }
        impl std::error::Error for Connect {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let refused = Connect(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused"));
        assert_eq!(with_causes(&refused), "client error (Connect): Connection refused");
        assert_eq!(with_causes(&std::io::Error::other("no route")), "no route", "a cause already said is not repeated");
    }

    fn loopback() -> Topology {
        Topology::new(&parse_scenario(include_str!("../../scenarios/loopback.yaml")).unwrap())
    }

    #[test]
    fn kubeadm_config_is_on_the_vip_only_with_endpoint_and_both_sans() {
        let t = loopback();
        let patched = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: 127.0.20.99:6443\n\
                       apiServer:\n  certSANs:\n  - 127.0.20.99\n  - api.lab.test\n";
        let e = parse_cluster_configuration(patched).unwrap();
        assert!(e.on_vip(&t));
        assert_eq!(e.evidence(), "controlPlaneEndpoint: 127.0.20.99:6443, certSANs: [127.0.20.99, api.lab.test]");
        let no_sans = parse_cluster_configuration("controlPlaneEndpoint: api.lab.test:6443\n").unwrap();
        assert!(!no_sans.on_vip(&t), "the endpoint without the SANs is not the model's kubeadm_endpoint");
        let original = parse_cluster_configuration("kind: ClusterConfiguration\nkubernetesVersion: v1.34.2\n").unwrap();
        assert!(!original.on_vip(&t));
        assert!(parse_cluster_configuration("controlPlaneEndpoint: [").is_err());
    }

    #[test]
    fn cluster_info_gives_its_server() {
        let k = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: AAAA\n    server: https://127.0.20.10:6443\n  name: \"\"\n";
        assert_eq!(parse_cluster_info(k).unwrap().as_deref(), Some("https://127.0.20.10:6443"));
        assert_eq!(parse_cluster_info("apiVersion: v1\n").unwrap(), None);
    }

    #[test]
    fn the_guard_refuses_an_api_server_off_loopback_before_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        let kubeconfig = |server: &str| {
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n\
                 contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\nusers:\n- name: u\n  user: {{}}\n"
            )
        };
        std::fs::write(&path, kubeconfig("https://192.0.2.99:6443")).unwrap();
        let on = Guard::LOOPBACK_ONLY;
        let refused = KubeApi::from_file(&path, on).err().expect("refused");
        assert!(matches!(refused, ExecError::NotLoopback { .. }), "{refused}");
        assert!(refused.to_string().contains("192.0.2.99"), "{refused}");
        std::fs::write(&path, kubeconfig("https://api.lab.test:6443")).unwrap();
        assert!(matches!(KubeApi::from_file(&path, on), Err(ExecError::NotLoopback { .. })), "a name could resolve anywhere");
        std::fs::write(&path, kubeconfig("http://127.0.0.1:1")).unwrap();
        assert!(KubeApi::from_file(&path, on).is_ok(), "loopback passes (nothing is connected yet)");
        assert!(matches!(KubeApi::from_file(&dir.path().join("none"), on), Err(ExecError::Kube { .. })));
    }

    #[test]
    fn the_guard_refuses_credential_plugins_and_proxies_before_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        let kubeconfig = |cluster_extra: &str, user: &str| {
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\n{cluster_extra}\
                 contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\nusers:\n- name: u\n  user:\n{user}"
            )
        };
        let on = Guard::LOOPBACK_ONLY;
        let exec = "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws\n      args: [eks, get-token]\n      interactiveMode: Never\n";
        std::fs::write(&path, kubeconfig("", exec)).unwrap();
        let refused = KubeApi::from_file(&path, on).err().expect("an exec plugin is refused");
        assert!(matches!(refused, ExecError::NotLoopback { .. }), "{refused}");
        assert!(refused.to_string().contains("exec credential plugin (aws)"), "{refused}");
        let provider = "    auth-provider:\n      name: oidc\n      config: {}\n";
        std::fs::write(&path, kubeconfig("", provider)).unwrap();
        assert!(matches!(KubeApi::from_file(&path, on), Err(ExecError::NotLoopback { .. })));
        std::fs::write(&path, kubeconfig("    proxy-url: http://127.0.0.1:3128\n", "    token: t\n")).unwrap();
        let proxied = KubeApi::from_file(&path, on).err().expect("a proxy is refused");
        assert!(proxied.to_string().contains("through the proxy"), "{proxied}");
    }
}
