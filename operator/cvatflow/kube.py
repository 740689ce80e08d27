"""The one Kubernetes API client builder: a test URL, else in-cluster credentials, else the kubeconfig."""
from __future__ import annotations

from cvatflow.errors import RunError


def api_client(kubeconfig: str | None = None, url: str | None = None, pool_size: int = 32):
    """A `kubernetes.client.ApiClient`.

    `url` (the `CVATFLOW_KUBE_URL` setting) points at a test or development API server without TLS
    checks; otherwise in-cluster credentials, otherwise `kubeconfig` (or $KUBECONFIG / ~/.kube/config).
    Raises RunError, with the fix, when none of them is there.
    """
    from kubernetes import client, config

    configuration = client.Configuration()
    if url:
        configuration.host = url
        configuration.verify_ssl = False
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            try:
                config.load_kube_config(config_file=kubeconfig or None, client_configuration=configuration)
            except (config.ConfigException, FileNotFoundError, TypeError) as exc:
                raise RunError(f"no Kubernetes cluster configured ({exc}); set KUBECONFIG or run in a cluster, "
                               f"or use --local") from None
    # kopf runs sync handlers in a thread pool, the API server a pool of workers: a connection each.
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)
