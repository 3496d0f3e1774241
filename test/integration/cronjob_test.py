#!/usr/bin/env python3
"""CronJobs end to end on loopback (no root, no kubelet): skiff-apiserver + skiff-controller-manager
+ skiffctl, compared with kubectl 1.32 where kubectl has the same command.
Checks: validation messages; the controller creates <cj>-<minutes> at the next minute with the
scheduled-timestamp annotation, controller ownerRef, labels, and status active/lastScheduleTime
and a SuccessfulCreate event; a finished Job leaves status.active (SawCompletedJob) and sets
lastSuccessfulTime; `skiffctl create job --from=cronjob/X` builds what kubectl builds;
get cj tables equal kubectl's."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.environ.get("SKIFF_SRC", "/work/main"), "test/integration"))
import testlib  # noqa: E402
import ctrl_lib  # noqa: E402

t = ctrl_lib.begin(240)
CM = testlib.need_bin("skiff-controller-manager")
CTL = testlib.need_bin("skiffctl")
NS = "cj-test"
CJ = "/apis/batch/v1/namespaces/%s/cronjobs" % NS
JOBS = "/apis/batch/v1/namespaces/%s/jobs" % NS
srv = testlib.Server().start()
api = srv.client()


def run(argv):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def ctl(*a):
    return run([CTL, "--kubeconfig", srv.kubeconfig, "-n", NS] + list(a))


def kubectl(*a):
    return run(["kubectl", "--kubeconfig", srv.kubeconfig, "--cache-dir", srv.dir + "/kc", "-n", NS]
               + list(a))


def cronjob(name, schedule, **spec):
    s = {"schedule": schedule,
         "jobTemplate": {"metadata": {"labels": {"app": name}},
                         "spec": {"template": {"spec": {
                             "restartPolicy": "Never",
                             "containers": [{"name": "c", "image": "busybox",
                                             "command": ["date"]}]}}}}}
    s.update(spec)
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": name, "namespace": NS}, "spec": s}


cm = ctrl_lib.controller_manager(CM, srv)
try:
    ctrl_lib.create_namespace(api, t, NS)
    # --- validation
    r = api.post(CJ, cronjob("bad", "61 * * * *"))
    t.check("schedule 61 * * * * refused (422) with robfig's words",
            r.status == 422 and (r.json or {}).get("message") ==
            'CronJob.batch "bad" is invalid: spec.schedule: Invalid value: "61 * * * *": '
            'end of range (61) above maximum (59): 61', r)
    r = api.post(CJ, cronjob("bad", "0 * * * *", timeZone="Mars/Olympus"))
    t.check("unknown time zone refused",
            r.status == 422 and "unknown time zone Mars/Olympus" in json.dumps(r.json), r)
    r = api.post(CJ, cronjob("bad", "TZ=UTC 0 * * * *"))
    t.check("TZ= in schedule refused",
            r.status == 422 and "cannot use TZ or CRON_TZ in schedule" in json.dumps(r.json), r)

    # --- the controller runs it at the next minute
    r = api.post(CJ, cronjob("hello", "* * * * *", timeZone="Europe/Berlin"))
    t.check("create CronJob hello (every minute, Europe/Berlin)", r.status == 201, r)
    cj = r.json or {}
    t.check("defaults: Allow, suspend false, history 3/1",
            cj.get("spec", {}).get("concurrencyPolicy") == "Allow" and
            cj["spec"].get("suspend") is False and
            cj["spec"].get("successfulJobsHistoryLimit") == 3 and
            cj["spec"].get("failedJobsHistoryLimit") == 1, cj.get("spec"))
    uid = cj.get("metadata", {}).get("uid")

    def jobs_of():
        r = api.get(JOBS)
        return [j for j in (r.json or {}).get("items", [])
                if any(o.get("uid") == uid for o in j["metadata"].get("ownerReferences") or [])]

    got = ctrl_lib.wait_for("a Job of hello", jobs_of, timeout=75, interval=0.5)
    t.check("a Job appeared within 75 s", got, jobs_of())
    job = got[0] if got else {}
    md = job.get("metadata", {})
    name = md.get("name", "")
    minutes = int(name.split("-")[-1]) if name.startswith("hello-") else 0
    ts = (md.get("annotations") or {}).get("batch.kubernetes.io/cronjob-scheduled-timestamp", "")
    t.check("Job name hello-<minutes>, annotation in Europe/Berlin, labels, controller ownerRef",
            minutes > 0 and ts.endswith(("+01:00", "+02:00")) and
            md.get("labels", {}).get("app") == "hello" and
            md.get("ownerReferences") == [{"apiVersion": "batch/v1", "kind": "CronJob",
                                           "name": "hello", "uid": uid, "controller": True,
                                           "blockOwnerDeletion": True}], md)

    def status():
        return (api.get(CJ + "/hello").json or {}).get("status", {})

    st = ctrl_lib.wait_for("status.active", lambda: status().get("active") and status())
    t.check("status.active names the Job, lastScheduleTime = minutes*60",
            st and st["active"][0].get("name") == name and
            st.get("lastScheduleTime") == time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                        time.gmtime(minutes * 60)), st)
    ev = ctrl_lib.wait_for("SuccessfulCreate", lambda: ctrl_lib.events_for(
        api, "hello", NS, "SuccessfulCreate"))
    t.check("event SuccessfulCreate 'Created job %s'" % name,
            ev and ev[0].get("message") == "Created job " + name, ev)

    # --- tables as kubectl prints them
    # LAST SCHEDULE and AGE are ages: the two commands can straddle a second (or a new Job can
    # start between them). Compare the pair again (up to 10 times) until both ran in the same
    # second; a real difference shows in every round.
    for _ in range(10):
        a, b = ctl("get", "cj", "-o", "wide"), kubectl("get", "cj", "-o", "wide")
        if a[0] == 0 and a[1] == b[1]:
            break
        time.sleep(0.3)
    t.check("skiffctl get cj -o wide == kubectl's", a[0] == 0 and a[1] == b[1], (a, b))
    testlib.log("\n" + a[1])
    # --- describe (kubectl's own describer against our server)
    d = kubectl("describe", "cronjob", "hello")
    testlib.log("\n" + d[1])
    t.check("kubectl describe cronjob works against skiff", d[0] == 0 and
            "Schedule:" in d[1], d)

    # --- create job --from
    a = ctl("create", "job", "manual-1", "--from=cronjob/hello")
    t.check("skiffctl create job --from=cronjob/hello", a[0] == 0 and
            a[1] == "job.batch/manual-1 created\n", a)
    mine = (api.get(JOBS + "/manual-1").json or {})
    k = kubectl("create", "job", "manual-1", "--from=cronjob/hello", "--dry-run=client", "-o",
                "json")
    theirs = json.loads(k[1]) if k[0] == 0 else {}
    strip = lambda m: {x: m.get(x) for x in ("name", "annotations", "labels", "ownerReferences")}
    t.check("same metadata as kubectl's create job --from (dry-run)",
            strip(mine.get("metadata", {})) == strip(theirs.get("metadata", {})),
            (mine.get("metadata"), theirs.get("metadata")))
    a = ctl("create", "job", "x", "--from=cronjob/nope")
    t.check("missing cronjob: kubectl's NotFound",
            a[0] == 1 and 'cronjobs.batch "nope" not found' in a[2], a)

    # --- a finished Job leaves status.active
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    r = api.patch(JOBS + "/" + name + "/status", {"status": {
        "startTime": now, "completionTime": now, "succeeded": 1,
        "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                       {"type": "Complete", "status": "True"}]}}, ctrl_lib.MERGE)
    t.check("mark %s Complete (jobs/status)" % name, r.status == 200, r)
    ok = ctrl_lib.wait_for("active emptied", lambda: name not in json.dumps(
        status().get("active", [])) and status().get("lastSuccessfulTime"), timeout=30)
    t.check("status: Job gone from active, lastSuccessfulTime set", ok, status())
    # Events are posted in the background, after the status write seen above.
    ev = ctrl_lib.wait_for("SawCompletedJob", lambda: ctrl_lib.events_for(
        api, "hello", NS, "SawCompletedJob"), timeout=30)
    t.check("event SawCompletedJob", ev and ev[0]["message"].startswith(
        "Saw completed job: " + name), ev)
except SystemExit:
    raise
except Exception as e:
    t.check("no exception", False, repr(e))
if t.failed:
    cm.dump_log(80)
t.finish()
