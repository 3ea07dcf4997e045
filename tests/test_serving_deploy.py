"""The deployment files for real TF Serving (Docker Compose, Kubernetes) agree with each other and
parse as TF Serving's own config protos. Docker and Kubernetes cannot run here: the files are
checked, not deployed."""

import os
import re

import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

DEPLOY = os.path.join(os.path.dirname(__file__), "..", "serving", "deploy")
# The fields of TF Serving's BatchingParameters (session_bundle_config.proto), whose Python module
# tensorflow-serving-api does not ship.
BATCHING_FIELDS = {
    "max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
    "thread_pool_name", "allowed_batch_sizes", "pad_variable_length_inputs",
    "enable_large_batch_splitting", "max_execution_batch_size",
}


def load(name):
    with open(os.path.join(DEPLOY, name)) as f:
        return f.read() if not name.endswith(".yaml") and not name.endswith(".yml") \
            else yaml.safe_load(f)


def flags(args) -> dict:
    return dict(a.removeprefix("--").split("=", 1) for a in args)


def model_config():
    return text_format.Parse(load("models.config"), model_server_config_pb2.ModelServerConfig())


def test_models_config_is_a_model_server_config():
    (config,) = model_config().model_config_list.config
    assert (config.name, config.base_path, config.model_platform) == \
        ("ihas", "/models/ihas", "tensorflow")
    assert config.model_version_policy.latest.num_versions == 1


def test_batching_parameters_are_batching_parameters():
    lines = [x for x in load("batching_parameters.txt").splitlines()
             if x.strip() and not x.startswith("#")]
    for line in lines:
        match = re.fullmatch(r"(\w+) \{ value: (\d+) \}", line)
        assert match and match[1] in BATCHING_FIELDS, line
    assert len(lines) == 4


def test_compose_and_kubernetes_run_the_same_server():
    compose = load("docker-compose.yml")["services"]["tf-serving"]
    (container,) = load("kubernetes/deployment.yaml")["spec"]["template"]["spec"]["containers"]
    assert compose["image"] == container["image"] and re.fullmatch(
        r"tensorflow/serving:\d+\.\d+\.\d+", compose["image"])
    assert compose["entrypoint"] == container["command"] == ["tensorflow_model_server"]
    assert compose["command"] == container["args"]
    server = flags(compose["command"])
    assert compose["ports"] == [f"{server['port']}:{server['port']}",
                                f"{server['rest_api_port']}:{server['rest_api_port']}"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": int(server["port"]), "http": int(server["rest_api_port"])}

    # The config files are mounted where the flags look for them, the models where the config
    # says they are.
    mounts = dict(re.fullmatch(r"(.+):(/[^:]+):ro", v).group(2, 1) for v in compose["volumes"])
    for flag in ("model_config_file", "batching_parameters_file"):
        source = mounts[server[flag]]
        assert os.path.exists(os.path.join(DEPLOY, source)), source
    (config,) = model_config().model_config_list.config
    assert config.base_path in mounts
    k8s_mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert os.path.dirname(server["model_config_file"]) == k8s_mounts["config"]
    assert config.base_path.startswith(k8s_mounts["models"] + "/")
    assert container["readinessProbe"]["httpGet"]["path"] == f"/v1/models/{config.name}"


def test_kustomization_and_service():
    kustomization = load("kustomization.yaml")
    for path in kustomization["resources"]:
        assert os.path.exists(os.path.join(DEPLOY, path)), path
    (generated,) = kustomization["configMapGenerator"]
    assert sorted(generated["files"]) == ["batching_parameters.txt", "models.config"]
    deployment = load("kubernetes/deployment.yaml")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == generated["name"]
    service = load("kubernetes/service.yaml")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"grpc", "http"}
