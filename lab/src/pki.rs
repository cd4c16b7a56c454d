//! The lab's PKI: a CA of its own and each master's apiserver serving certificate, written to disk
//! as kubeadm writes `/etc/kubernetes/pki/apiserver.{crt,key}`.
//!
//! The SANs follow the twin's state for the master: always the master's own (loopback) address and
//! name; the VIP's loopback address and the scenario's FQDN only when the model says the cert
//! carries them (`Cluster::cert_vip`, set by `kubeadm init phase certs apiserver` after
//! `kubeadm-config` got its `certSANs`). Private keys are written with mode 0600 and never logged.

use crate::error::LabError;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The CA every stand-in's serving cert chains to, and that the VIP probe trusts.
pub struct LabCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// What a serving cert was issued for: the SANs a client may verify against.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServingCertSans {
    pub ips: Vec<Ipv4Addr>,
    pub dns: Vec<String>,
}

impl ServingCertSans {
    /// The SANs of `name` at `address`, plus the VIP's when `vip` is given.
    pub fn of(name: &str, address: Ipv4Addr, vip: Option<(Ipv4Addr, &str)>) -> ServingCertSans {
        let mut sans = ServingCertSans { ips: vec![address], dns: vec![name.to_string(), "kubernetes".to_string()] };
        if let Some((vip, fqdn)) = vip {
            sans.ips.push(vip);
            sans.dns.push(fqdn.to_string());
        }
        sans
    }
}

fn pki_error(what: &str, e: impl std::fmt::Display) -> LabError {
    LabError::Command { command: format!("lab PKI: {what}"), message: e.to_string() }
}

/// Writes `text` to `path`, readable by the owner only when `secret`.
fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), LabError> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| LabError::io(format!("create {}", parent.display()), e))?;
    }
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(|e| LabError::io(format!("write {}", path.display()), e))?;
    file.write_all(text.as_bytes()).map_err(|e| LabError::io(format!("write {}", path.display()), e))
}

impl LabCa {
    /// A fresh CA whose certificate is written to `dir/ca.crt`.
    ///
    /// # Errors
    /// Key generation or signing fails (rcgen), or the file cannot be written.
    pub fn new(dir: &Path) -> Result<LabCa, LabError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| pki_error("CA parameters", e))?;
        params.distinguished_name.push(DnType::CommonName, "plan-lab-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(|e| pki_error("CA key", e))?;
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(|e| pki_error("self-sign the CA", e))?;
        write_file(&dir.join("ca.crt"), &issuer.pem(), false)?;
        Ok(LabCa { issuer })
    }

    /// Writes the CA's private key to `path` (0600), for a `kubeadm` shim on a fixture host that
    /// signs serving certs with `openssl` as kubeadm signs them with `/etc/kubernetes/pki/ca.key`.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write_key(&self, path: &Path) -> Result<(), LabError> {
        write_file(path, &self.issuer.key().serialize_pem(), true)
    }

    /// The CA certificate as `ca.crt` holds it, for a kubeconfig's `certificate-authority-data`.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA certificate, for a client's trust store.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// Issues a serving cert for `sans` and writes it as `crt` and `key` (0600): what
    /// `kubeadm init phase certs apiserver` leaves on disk.
    ///
    /// # Errors
    /// Signing fails or a file cannot be written.
    pub fn issue(&self, sans: &ServingCertSans, crt: &Path, key: &Path) -> Result<(), LabError> {
        let names: Vec<String> = sans.ips.iter().map(|ip| ip.to_string()).chain(sans.dns.iter().cloned()).collect();
        let mut params = CertificateParams::new(names).map_err(|e| pki_error("serving cert parameters", e))?;
        params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let pair = KeyPair::generate().map_err(|e| pki_error("serving key", e))?;
        let cert = params.signed_by(&pair, &self.issuer).map_err(|e| pki_error("sign the serving cert", e))?;
        write_file(key, &pair.serialize_pem(), true)?;
        write_file(crt, &cert.pem(), false)
    }
}

/// A serving cert and key read back from disk, as an apiserver reads them when it (re)starts.
///
/// # Errors
/// A file is missing or not PEM.
pub fn load_pair(crt: &Path, key: &Path) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), LabError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(crt)
        .map_err(|e| pki_error(&format!("read {}", crt.display()), e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pki_error(&format!("read {}", crt.display()), e))?;
    if certs.is_empty() {
        return Err(pki_error(&format!("read {}", crt.display()), "no certificate in the file"));
    }
    // The error names the file, never its content.
    let key = PrivateKeyDer::from_pem_file(key).map_err(|_| pki_error(&format!("read {}", key.display()), "not a PEM private key"))?;
    Ok((certs, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_pairs_load_back_and_keep_the_key_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = LabCa::new(dir.path()).expect("CA");
        let sans = ServingCertSans::of("k8s-master", Ipv4Addr::new(127, 0, 20, 100), Some((Ipv4Addr::new(127, 0, 20, 99), "api.lan")));
        assert!(sans.ips.contains(&Ipv4Addr::new(127, 0, 20, 99)));
        let (crt, key) = (dir.path().join("apiserver.crt"), dir.path().join("apiserver.key"));
        ca.issue(&sans, &crt, &key).expect("issued");
        let (certs, _key) = load_pair(&crt, &key).expect("loads");
        assert_eq!(certs.len(), 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("key exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!ServingCertSans::of("m", Ipv4Addr::new(127, 0, 20, 100), None).ips.contains(&Ipv4Addr::new(127, 0, 20, 99)));
    }

    #[test]
    fn a_missing_pair_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        match load_pair(&dir.path().join("none.crt"), &dir.path().join("none.key")) {
            Err(e) => assert!(e.to_string().contains("none.crt"), "{e}"),
            Ok(_) => panic!("no files, no pair"),
        }
    }
}
