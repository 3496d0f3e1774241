#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "cli/cronjob.h"
#include "cli/services.h"

namespace skiff::cli {

int run(int argc, char** argv, std::istream& in, std::ostream& out, std::ostream& err) {
  Context ctx;
  ctx.in = &in;
  ctx.out = &out;
  ctx.err = &err;
  GlobalFlags& g = ctx.flags;

  CLI::App app{"skiffctl controls a skiff cluster through its Kubernetes-style API."};
  app.name("skiffctl");
  app.require_subcommand(1);
  app.fallthrough();  // global flags may follow the command, as with kubectl
  app.add_option("--kubeconfig", g.kubeconfig, "Path to the kubeconfig file");
  app.add_option("--context", g.context, "The kubeconfig context to use");
  app.add_option("-s,--server", g.server, "The API server URL");
  app.add_option("--token", g.token, "Bearer token for authentication");
  app.add_option("--certificate-authority", g.certificate_authority,
                 "Path to a CA certificate file for the server");
  app.add_flag("--insecure-skip-tls-verify", g.insecure_skip_tls_verify,
               "Do not verify the server's certificate");
  app.add_option("-n,--namespace", g.namespace_, "The namespace for this request");
  app.add_flag("-A,--all-namespaces", g.all_namespaces, "Across all namespaces");
  app.add_option("--request-timeout", g.request_timeout_s, "Seconds to wait for each request");

  GetOptions get;
  auto* get_cmd = app.add_subcommand("get", "Display one or many resources");
  get_cmd->add_option("args", get.args, "TYPE[,TYPE...] [NAME...] or TYPE/NAME...");
  get_cmd->add_option("-o,--output", get.output, "Output format: wide|yaml|json|name");
  get_cmd->add_option("-l,--selector", get.selector, "Label selector");
  get_cmd->add_option("--field-selector", get.field_selector, "Field selector");
  get_cmd->add_flag("-w,--watch", get.watch, "Watch for changes after listing");
  get_cmd->add_flag("--watch-only", get.watch_only, "Watch for changes without listing");
  get_cmd->add_flag("--show-labels", get.show_labels, "Show labels as the last column");
  get_cmd->add_flag("--no-headers", get.no_headers, "Do not print headers");

  ApplyOptions apply;
  auto* apply_cmd = app.add_subcommand("apply", "Apply a configuration to resources");
  apply_cmd->add_option("-f,--filename", apply.files, "File, directory or - for stdin")
      ->allow_extra_args(false);

  ApplyOptions create;
  create.create_only = true;
  auto* create_cmd = app.add_subcommand("create", "Create resources from files");
  create_cmd->add_option("-f,--filename", create.files, "File, directory or - for stdin")
      ->allow_extra_args(false);
  CreateJobOptions create_job;
  auto* create_job_cmd = create_cmd->add_subcommand("job", "Create a job with the specified name");
  create_job_cmd->add_option("args", create_job.args, "NAME [-- COMMAND [ARG...]]");
  create_job_cmd->add_option("--from", create_job.from,
                             "The resource to create the job from (only cronjob/NAME)");
  create_job_cmd->add_option("--image", create_job.image, "Image name to run");

  DeleteOptions del;
  auto* delete_cmd = app.add_subcommand("delete", "Delete resources");
  delete_cmd->add_option("args", del.args, "TYPE[,TYPE...] NAME... or TYPE/NAME...");
  delete_cmd->add_option("-f,--filename", del.files, "File, directory or - for stdin")
      ->allow_extra_args(false);
  delete_cmd->add_option("-l,--selector", del.selector, "Label selector");
  delete_cmd->add_flag("--all", del.all, "Delete all resources of the type in the namespace");
  delete_cmd->add_flag("--ignore-not-found", del.ignore_not_found,
                       "Treat a missing resource as deleted");

  std::vector<std::string> describe_args;
  auto* describe_cmd = app.add_subcommand("describe", "Show details of resources");
  describe_cmd->add_option("args", describe_args, "TYPE [NAME...] or TYPE/NAME...");

  LogsOptions logs;
  auto* logs_cmd = app.add_subcommand("logs", "Print the logs of a container in a pod");
  logs_cmd->add_option("pod", logs.pod, "POD")->required();
  logs_cmd->add_option("-c,--container", logs.container, "Container name");
  logs_cmd->add_flag("-f,--follow", logs.follow, "Stream new log lines");
  logs_cmd->add_flag("-p,--previous", logs.previous, "The previous instance of the container");
  logs_cmd->add_flag("--timestamps", logs.timestamps, "Prefix each line with its timestamp");
  logs_cmd->add_option("--tail", logs.tail, "Lines of recent log to show (-1: all)");

  ExecOptions exec;
  auto* exec_cmd = app.add_subcommand("exec", "Run a command in a container");
  exec_cmd->add_option("pod", exec.pod, "POD")->required();
  exec_cmd->add_option("command", exec.command, "-- COMMAND [ARG...]");
  exec_cmd->add_option("-c,--container", exec.container, "Container name");
  exec_cmd->add_flag("-i,--stdin", exec.stdin, "Pass stdin to the container");
  exec_cmd->add_flag("-t,--tty", exec.tty, "Allocate a TTY");

  ScaleOptions scale;
  auto* scale_cmd = app.add_subcommand("scale", "Set a new size for a deployment or replica set");
  scale_cmd->add_option("args", scale.args, "TYPE NAME... or TYPE/NAME...");
  scale_cmd->add_option("--replicas", scale.replicas, "The new desired number of replicas");
  scale_cmd->add_option("--current-replicas", scale.current_replicas,
                        "Precondition: the current size must be this (-1: no precondition)");
  scale_cmd->add_option("--resource-version", scale.resource_version,
                        "Precondition: the Scale's resourceVersion must be this");

  RolloutOptions rollout;
  auto* rollout_cmd = app.add_subcommand("rollout", "Manage the rollout of a deployment");
  rollout_cmd->require_subcommand(1);
  auto add_rollout = [&](const char* verb, const char* help) {
    auto* c = rollout_cmd->add_subcommand(verb, help);
    c->add_option("args", rollout.args, "TYPE NAME... or TYPE/NAME...");
    c->callback([&rollout, verb] { rollout.verb = verb; });
    return c;
  };
  auto* status_cmd = add_rollout("status", "Show the status of the rollout");
  status_cmd->add_option("--timeout", rollout.timeout,
                         "How long to wait before giving up (Go duration; 0 = forever)");
  // A flag, so `--watch=false` works as with kubectl's bool flags.
  status_cmd->add_flag("-w,--watch", rollout.watch,
                       "Watch the status of the rollout until it's done (--watch=false: once)");
  status_cmd->add_option("--revision", rollout.revision,
                         "Pin to a specific revision for showing its status");
  auto* history_cmd = add_rollout("history", "View rollout history");
  history_cmd->add_option("--revision", rollout.revision,
                          "See the details, including the pod template, of this revision");
  auto* undo_cmd = add_rollout("undo", "Undo a previous rollout");
  undo_cmd->add_option("--to-revision", rollout.to_revision,
                       "The revision to roll back to (0: the previous one)");
  add_rollout("restart", "Restart a resource");
  add_rollout("pause", "Mark the provided resource as paused");
  add_rollout("resume", "Resume a paused resource");

  ExposeOptions expose;
  auto* expose_cmd = app.add_subcommand(
      "expose", "Expose a deployment, replica set or pod as a new Kubernetes service");
  expose_cmd->add_option("args", expose.args, "TYPE NAME or TYPE/NAME");
  expose_cmd->add_option("--port", expose.port, "The port that the service should serve on");
  expose_cmd->add_option("--protocol", expose.protocol,
                         "The network protocol for the service (TCP, UDP, SCTP)");
  expose_cmd->add_option("--target-port", expose.target_port,
                         "Name or number of the port on the container the service directs to");
  expose_cmd->add_option("--type", expose.type,
                         "Type for this service: ClusterIP, NodePort, LoadBalancer, ExternalName");
  expose_cmd->add_option("--name", expose.name, "The name for the newly created object");
  expose_cmd->add_option("--selector", expose.selector,
                         "A label selector for the new service (k=v,...); default: the object's");
  expose_cmd->add_option("-l,--labels", expose.labels, "Labels to apply to the service");
  expose_cmd->add_option("--external-ip", expose.external_ip,
                         "An external IP address to accept for the service");
  expose_cmd->add_option("--load-balancer-ip", expose.load_balancer_ip,
                         "IP to request for a LoadBalancer service");
  expose_cmd->add_option("--session-affinity", expose.session_affinity, "None or ClientIP");
  expose_cmd->add_option("--cluster-ip", expose.cluster_ip,
                         "ClusterIP to assign to the service ('None': headless)");

  bool client_only = false;
  auto* version_cmd = app.add_subcommand("version", "Print client and server versions");
  version_cmd->add_flag("--client", client_only, "Client version only");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e, out, err) == 0 ? 0 : 1;
  }
  if (version_cmd->parsed() && client_only) return run_version(ctx, true);
  if (!ctx.connect()) return 1;
  int rc = 1;
  if (get_cmd->parsed())
    rc = run_get(ctx, get);
  else if (apply_cmd->parsed())
    rc = run_apply(ctx, apply);
  else if (create_job_cmd->parsed())
    rc = run_create_job(ctx, create_job);
  else if (create_cmd->parsed())
    rc = run_apply(ctx, create);
  else if (delete_cmd->parsed())
    rc = run_delete(ctx, del);
  else if (describe_cmd->parsed())
    rc = run_describe(ctx, describe_args);
  else if (logs_cmd->parsed())
    rc = run_logs(ctx, logs);
  else if (exec_cmd->parsed())
    rc = run_exec(ctx, exec);
  else if (scale_cmd->parsed())
    rc = run_scale(ctx, scale);
  else if (rollout_cmd->parsed())
    rc = run_rollout(ctx, rollout);
  else if (expose_cmd->parsed())
    rc = run_expose(ctx, expose);
  else if (version_cmd->parsed())
    rc = run_version(ctx, false);
  out.flush();
  return rc;
}

}  // namespace skiff::cli
