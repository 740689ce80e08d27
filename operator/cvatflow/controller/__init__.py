"""The operator for TrainingRun custom resources: dump, submit one Argo Workflow, mirror its state (kopf)."""
