// CronJobs in skiffctl: `create job NAME --from=cronjob/CJ` (and `--image`) as kubectl 1.32's
// `create job` builds the Job, and kubectl's `describe cronjob` layout. The pure parts (the Job
// built, the describe text) are separate from the requests so tests call them directly.
#pragma once

#include <string>
#include <vector>

#include "cli/context.h"
#include "cli/describe_writer.h"

namespace skiff::cli {

struct CreateJobOptions {
  std::vector<std::string> args;  // NAME [-- COMMAND [ARG...]]
  std::string from;               // "cronjob/NAME" (also "cj/NAME", "cronjobs.batch/NAME")
  std::string image;
};
// GET the CronJob, POST the Job (?fieldManager=kubectl-create), print `job.batch/NAME created`.
// Errors as kubectl's: `error: exactly one NAME is required, got N`, `error: either --image or
// --from must be specified`, `error: from must be of the form <resource>/<name>`, `error:
// unknown object type ...`, the server's NotFound/AlreadyExists/Invalid.
int run_create_job(Context& ctx, const CreateJobOptions& o);

// kubectl's createJobFromCronJob: annotations `cronjob.kubernetes.io/instantiate: manual` plus
// the template's, the template's labels, ownerReference {batch/v1, CronJob, name, uid,
// controller: true} (no blockOwnerDeletion, as kubectl), spec = jobTemplate.spec.
json job_from_cronjob(const std::string& name, const std::string& ns, const json& cronjob);
// kubectl's createJob for --image: one container NAME with the image and command,
// restartPolicy Never.
json job_from_image(const std::string& name, const std::string& ns, const std::string& image,
                    const std::vector<std::string>& command);

// kubectl 1.32's describeCronJob up to (not including) Events: Name, Namespace, Labels,
// Annotations, Schedule, Concurrency Policy, Suspend, Successful/Failed Job History Limit,
// Starting Deadline Seconds, Selector, Parallelism, Completions, [Active Deadline Seconds], Pod
// Template, Last Schedule Time, Active Jobs. cli/describe.cc adds the Events.
void describe_cronjob(DescribeWriter& w, const json& cronjob);

}  // namespace skiff::cli
