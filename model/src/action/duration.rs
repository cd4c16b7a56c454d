//! How long each action takes: the step durations and the model clock follow from it.

use super::Action;

impl Action {
    /// How long the action takes, in seconds (the operator's and the machine's time).
    pub fn duration_s(self) -> u32 {
        use Action::*;
        match self {
            Verify(_) => 30,
            TakeVmSnapshot => 60,
            PatchKubeadmConfig => 600,
            RevertKubeadmConfig => 300,
            MoveCertAside(_) | RestoreCert(_) => 10,
            GenerateCert(_) => 20,
            RestartApiserver(_) => 60,
            ReserveVip | AddVipDnsRecord => 300,
            DeleteStaleDnsRecord | RestoreStaleDnsRecords | RevertDns | RemoveLbBackend(_) => 60,
            ReleaseVip | StartVipDaemon(_) | StopVipDaemon(_) => 120,
            DeclareLbFrontend => 480,
            RemoveLbFrontend | DeclareLbPool(_) | DeployLb | ControlPlaneUp(_) => 120,
            RefactorConfigStack => 1800,
            ApplyConfigStack => 300,
            RevertConfigStack => 600,
            ConfigStackRemoveHost(_) | DestroyVm(_) => 300,
            DeclareStackHosts(_) => 60,
            BumpTemplate => 1800,
            // Edits of the infra repo: their time is the step's `extra_s`.
            DeclareVipRecord | DeclareStaleRecordDeletion | DeclareTemplate | DeclareVm(_) => 0,
            CreateVm(_) => 900,
            UploadCerts | CreateToken | EtcdStart(_) | EtcdPromote(_) | EtcdMemberRemove(_) | FlipKubelet(_) | RevertKubelet(_)
            | Shutdown(_) => 30,
            EtcdMemberAdd(_) => 5,
            KubeadmReset(_) => 60,
            DeleteNode(_) | WriteOff(_) => 10,
            ForgetJoinSecrets => 30,
            RevokeJoinTokens => 10,
            PointKubeProxyAtVip => 120,
            FlipConsumersOf(_) => 1200,
            RevertConsumers | DeclareCronJobsOnControlPlane | DeclareGateQuorumCheck => 600,
            ApplyCronJobs | ApplyRebootGate | ApplyUpgradeChain => 300,
            DeclareChainMasterLoop => 1800,
            DeclareChainAnyMaster => 900,
            Boot(_) => 90,
            ForceNewCluster(_) => 300,
            RestoreSnapshot(_) => 900,
        }
    }
}
