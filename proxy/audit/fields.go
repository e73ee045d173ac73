package audit

// Field names of the canonical decision line (zap) and the audit file,
// shared by every door so log pipelines can rely on them.
const (
	FieldAgent      = "agent"
	FieldRule       = "rule"
	FieldAction     = "action" // the decision: inject, allow, tunnel, deny, error, would_deny, use, hand_out
	FieldCredential = "credential"
	FieldInject     = "inject"
	FieldMethod     = "method"
	FieldHost       = "host"
	FieldPath       = "path"
	FieldStatus     = "status"
	FieldBytes      = "bytes"
	FieldDurationMS = "duration_ms"
	FieldCode       = "code"
	FieldDoor       = "door"
	FieldOperation  = "operation"
	FieldAborted    = "aborted"
	FieldApprover   = "approver" // who decided an approval: cli:USER, console, admin-token
	FieldError      = "error"
	FieldFile       = "file"
)
