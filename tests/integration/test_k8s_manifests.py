# test_k8s_manifests.py - deploy/k8s validated offline against the Kubernetes schemas (the npm package
# kubernetes-models, installed from tests/k8s/package-lock.json into a temporary folder), and checked
# for what running pecfs on a node needs: a privileged daemon with /dev/fuse, the data folder and the
# mount point on the host with Bidirectional propagation, a preStop unmount, liveness from the control
# socket (`pecfs ping`), the ConfigMap's pecfs.conf accepted by `pecfs mount --check`, and a training
# pod that sees the host mount. A manifest with a schema error must be refused by the same validator.
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import pecfs_harness as h

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K8S = os.path.join(ROOT, "deploy", "k8s")
VALIDATOR = os.path.join(ROOT, "tests", "k8s")


class K8sManifests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="pecfs-k8s-", dir=h.BASE_DIR)
        for f in ("package.json", "package-lock.json", "validate.mjs"):
            shutil.copy(os.path.join(VALIDATOR, f), cls.work)
        cp = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=cls.work, capture_output=True,
                            text=True, timeout=600)
        if cp.returncode != 0:
            raise AssertionError("npm ci of the validator failed: %s%s" % (cp.stdout, cp.stderr))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def validate(self, *files):
        out = os.path.join(self.work, "objects.json")
        cp = subprocess.run(["node", "validate.mjs", "--json", out] + list(files), cwd=self.work,
                            capture_output=True, text=True, timeout=120)
        with open(out) as f:
            return cp, json.load(f)

    def test_every_manifest_is_valid_and_does_what_a_node_needs(self):
        files = sorted(os.path.join(K8S, f) for f in os.listdir(K8S) if f.endswith(".yaml"))
        cp, objs = self.validate(*files)
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objs)
        self.assertEqual(kinds, [("ConfigMap", "pecfs-config"), ("DaemonSet", "pecfs"),
                                 ("Namespace", "pecfs-system"), ("Pod", "moe-train-0"), ("Secret", "pecfs-s3")])
        self.assertEqual(cp.stdout.count(": valid "), 5, cp.stdout)
        by_kind = {o["kind"]: o for o in objs}

        pod = by_kind["DaemonSet"]["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        self.assertTrue(c["securityContext"]["privileged"])
        vols = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        self.assertEqual(vols["fuse"]["hostPath"], {"path": "/dev/fuse", "type": "CharDevice"})
        self.assertEqual(mounts["fuse"]["mountPath"], "/dev/fuse")
        self.assertEqual(vols["data"]["hostPath"]["path"], "/var/lib/pecfs")
        self.assertEqual(mounts["mnt"]["mountPropagation"], "Bidirectional")
        self.assertEqual(vols["config"]["configMap"]["name"], "pecfs-config")
        self.assertEqual(c["envFrom"][0]["secretRef"]["name"], "pecfs-s3")
        cmd = " ".join(c["command"])
        self.assertIn("pecfs mount -f -c /etc/pecfs/pecfs.conf /var/lib/pecfs /mnt/pecfs", cmd)
        self.assertEqual(c["lifecycle"]["preStop"]["exec"]["command"], ["pecfs", "umount", "/mnt/pecfs"])
        for probe in ("livenessProbe", "startupProbe"):
            self.assertEqual(c[probe]["exec"]["command"][:2], ["pecfs", "ping"], probe)
            self.assertEqual(c[probe]["exec"]["command"][-1], "/var/lib/pecfs", probe)
        self.assertGreaterEqual(pod["terminationGracePeriodSeconds"], 180)

        # the ConfigMap is a configuration pecfs accepts; the probe and preStop commands parse
        conf = os.path.join(self.work, "pecfs.conf")
        with open(conf, "w") as f:
            f.write(by_kind["ConfigMap"]["data"]["pecfs.conf"])
        cp = h.cli("mount", "--check", "-c", conf, os.path.join(self.work, "data"), self.work)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertIn("allow-other = yes", by_kind["ConfigMap"]["data"]["pecfs.conf"])
        self.assertFalse(os.path.exists(os.path.join(self.work, "data")))  # --check creates nothing
        cp = h.cli(*c["livenessProbe"]["exec"]["command"][1:-1], self.work)
        self.assertEqual(cp.returncode, 1)  # parses; no daemon serves this folder
        self.assertIn("no daemon", cp.stderr)

        train = by_kind["Pod"]["spec"]
        tvols = {v["name"]: v for v in train["volumes"]}
        (tc,) = train["containers"]
        (tm,) = tc["volumeMounts"]
        self.assertEqual(tvols[tm["name"]]["hostPath"]["path"], "/mnt/pecfs")
        self.assertEqual(tm["mountPropagation"], "HostToContainer")
        self.assertEqual(train["nodeSelector"], pod["nodeSelector"])

    def test_the_validator_refuses_a_schema_error(self):
        with open(os.path.join(K8S, "daemonset.yaml")) as f:
            text = f.read()
        for bad in (text.replace("mountPropagation: Bidirectional", "mountPropagation: Both"),
                    text.replace("failureThreshold: 4", "failureThreshold: four"),
                    text.replace("kind: DaemonSet", "kind: DaemonSett")):
            path = os.path.join(self.work, "bad.yaml")
            with open(path, "w") as f:
                f.write(bad)
            cp, _ = self.validate(path)
            self.assertEqual(cp.returncode, 1, cp.stdout)
            self.assertIn("INVALID", cp.stdout)


if __name__ == "__main__":
    h.main()
