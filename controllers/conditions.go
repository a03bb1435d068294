package controllers

// Reason is the machine-readable cause in a status condition or an Event. People
// and alerts match on these, so they are part of the operator's interface
// (docs/operator.md tables them): never rename one casually.
type Reason string

// Reasons of status conditions. Several are also Event reasons, with the same
// meaning, so one type serves both.
const (
	// Any condition, until the operator has observed what it describes.
	ReasonReconciling Reason = "Reconciling"
	// Ready and Degraded: the reconcile failed with an error.
	ReasonReconcileError Reason = "ReconcileError"
	// Ready and Degraded (and a Warning Event): a referenced Secret or key is missing.
	ReasonSecretNotFound Reason = "SecretNotFound"
	// Ready=False: the CloudNativePG Cluster of spec.database.postgres is missing or not ready.
	ReasonDatabaseNotReady Reason = "DatabaseNotReady"

	// Ready.
	ReasonReady         Reason = "Ready"
	ReasonKeysNotReady  Reason = "KeysNotReady"
	ReasonUnavailable   Reason = "Unavailable"
	ReasonRedisNotReady Reason = "RedisNotReady" // also RedisReady=False
	ReasonHibernating   Reason = "Hibernating"   // also Available=False

	// Available.
	ReasonAllReplicasAvailable     Reason = "AllReplicasAvailable"
	ReasonMinimumReplicasAvailable Reason = "MinimumReplicasAvailable"
	ReasonNoReplicasAvailable      Reason = "NoReplicasAvailable"

	// Progressing (RollingOut is also Ready=False; RolloutComplete also an Event).
	ReasonRollingOut      Reason = "RollingOut"
	ReasonRolloutComplete Reason = "RolloutComplete"

	// Degraded. ProgressDeadlineExceeded and ReplicaFailure are the Deployment's own
	// condition reasons, passed through.
	ReasonAsExpected               Reason = "AsExpected"
	ReasonProgressDeadlineExceeded Reason = "ProgressDeadlineExceeded"
	ReasonReplicaFailure           Reason = "ReplicaFailure"

	// KeysReady (KeysCreated, KeyStaged and InvalidKeyring are also Events).
	ReasonKeysCreated    Reason = "KeysCreated"
	ReasonKeysValid      Reason = "KeysValid"
	ReasonKeyStaged      Reason = "KeyStaged"
	ReasonInvalidKeyring Reason = "InvalidKeyring"
	// KeysReady=False, Degraded and a Warning Event: the keyring Secret of a
	// ChatCluster whose keys are recorded in status is gone, or holds another
	// keyring. The operator does not replace it (stored messages would become
	// unreadable) and leaves the Deployment alone until the Secret is restored
	// or the loss is accepted (AnnotationAcceptKeyringLoss).
	ReasonKeyringMissing Reason = "KeyringMissing"
	ReasonKeyringForeign Reason = "KeyringForeign"

	// KeysPropagated: True once no staged key waits (Propagated); False while one
	// waits for its window or for a ready pod to load it (Waiting), or a pod has
	// not loaded it PropagationLagBound after the window (KeyPropagationLagging,
	// also a Warning Event).
	ReasonPropagated            Reason = "Propagated"
	ReasonWaiting               Reason = "Waiting"
	ReasonKeyPropagationLagging Reason = "KeyPropagationLagging"

	// RedisReady.
	ReasonRedisAvailable Reason = "RedisAvailable"
	ReasonExternal       Reason = "External"
	ReasonNotRequired    Reason = "NotRequired"

	// AttachmentsReady. True: on the operator's or an existing claim (Volume),
	// in S3, or, with SQLite and no spec.attachments, on the data volume. False
	// (each also a Warning Event when it starts): no spec.attachments with one
	// pod (Ephemeral: an emptyDir) or several (NotShared: each pod its own
	// emptyDir); the named claim is missing (ClaimNotFound) or not
	// ReadWriteMany for several replicas (ClaimNotShared), which, like a
	// missing Secret (SecretNotFound), stop the reconcile before the
	// Deployment and set Ready=False and Degraded=True with the same reason.
	ReasonAttachmentsVolume         Reason = "AttachmentsVolume"
	ReasonAttachmentsS3             Reason = "AttachmentsS3"
	ReasonAttachmentsOnDataVolume   Reason = "AttachmentsOnDataVolume"
	ReasonAttachmentsEphemeral      Reason = "AttachmentsEphemeral"
	ReasonAttachmentsNotShared      Reason = "AttachmentsNotShared"
	ReasonAttachmentsClaimNotFound  Reason = "AttachmentsClaimNotFound"
	ReasonAttachmentsClaimNotShared Reason = "AttachmentsClaimNotShared"

	// Paused (True: Paused, also Ready, Available, Progressing and Degraded
	// Unknown while the operator does not observe them; False: NotPaused).
	ReasonPaused    Reason = "Paused"
	ReasonNotPaused Reason = "NotPaused"

	// ServiceMonitorReady and PrometheusRuleReady.
	ReasonApplied         Reason = "Applied"
	ReasonCRDNotInstalled Reason = "CRDNotInstalled"
	ReasonDisabled        Reason = "Disabled"
)

// Reasons that appear only on Events.
const (
	ReasonCreated      Reason = "Created"
	ReasonDeleted      Reason = "Deleted"
	ReasonScaled       Reason = "Scaled"
	ReasonKeyActivated Reason = "KeyActivated"
	ReasonKeyRemoved   Reason = "KeyRemoved"
	// Warning: Degraded turned True, or its reason changed.
	ReasonDegraded Reason = "Degraded"
	// An existing keyring Secret taken on by a ChatCluster with no recorded keys
	// (the restore path: the ChatCluster was created again).
	ReasonKeysAdopted Reason = "KeysAdopted"
	// Warning: a person accepted the loss of the recorded keyring.
	ReasonKeyringLossAccepted Reason = "KeyringLossAccepted"
	// Warning: recorded non-active data keys are no longer in the keyring (a
	// person removed them); rows still sealed with them cannot be opened.
	ReasonDataKeysRemoved Reason = "DataKeysRemoved"
	// The accept-keyring-loss annotation was set while nothing was lost: removed.
	ReasonNoKeyringLoss Reason = "NoKeyringLoss"
	// The operator's default image changed (an operator upgrade): this
	// ChatCluster waits for the upgrade gate, or has taken it and rolls.
	ReasonUpgradeWaiting Reason = "UpgradeWaiting"
	ReasonUpgradeStarted Reason = "UpgradeStarted"
)

// EventAction is the action of an events.k8s.io Event: what the operator was
// doing when it recorded it.
type EventAction string

const (
	ActionReconcile  EventAction = "Reconcile"
	ActionRotateKeys EventAction = "RotateKeys"
	ActionScale      EventAction = "Scale"
	ActionUpgrade    EventAction = "Upgrade"
)
