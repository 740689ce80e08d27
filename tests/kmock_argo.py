"""Argo on kmock (an in-memory Kubernetes API): its resources and a WorkflowTemplate, a backend, Argo's status."""
from __future__ import annotations

import json

import requests

from cvatflow.runs.kubernetes import KubernetesBackend
from cvatflow.templates import get_template, render

WORKFLOWS = "argoproj.io/v1alpha1/workflows"
TEMPLATES = "argoproj.io/v1alpha1/workflowtemplates"


def setup_cluster(kmock, namespace="ml"):
    info = kmock.ResourceInfo
    verbs = {"list", "watch", "get", "patch", "create", "delete"}
    kmock.resources[WORKFLOWS] = info(kind="Workflow", namespaced=True, verbs=verbs)
    kmock.resources[TEMPLATES] = info(kind="WorkflowTemplate", namespaced=True, verbs=verbs)
    doc = render(get_template("maskrcnn-training"))
    doc["metadata"]["namespace"] = namespace
    kmock.objects[TEMPLATES, namespace, "maskrcnn-training"] = doc


def backend_for(kmock, namespace="ml") -> KubernetesBackend:
    from kubernetes import client

    config = client.Configuration()
    config.host = str(kmock.url)
    return KubernetesBackend(namespace, api=client.ApiClient(config))


def patch_status(kmock, name, status, namespace="ml"):
    """Play the Argo controller: it is the one that writes a Workflow's status."""
    response = requests.patch(f"{kmock.url}/apis/argoproj.io/v1alpha1/namespaces/{namespace}/workflows/{name}",
                              data=json.dumps({"status": status}),
                              headers={"Content-Type": "application/merge-patch+json"}, timeout=10)
    assert response.status_code < 300, response.text
