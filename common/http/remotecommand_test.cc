// The exec channel protocol: subprotocol choice, framing and the error-channel Status documents
// as Kubernetes' kubelet writes them and kubectl reads them.
#include "common/http/remotecommand.h"

#include <catch2/catch.hpp>

using namespace skiff::web::remotecommand;

TEST_CASE("subprotocol: the first offered one we speak", "[remotecommand]") {
  CHECK(negotiate("v5.channel.k8s.io, v4.channel.k8s.io") == "v5.channel.k8s.io");
  CHECK(negotiate("v4.channel.k8s.io,v5.channel.k8s.io") == "v4.channel.k8s.io");
  CHECK(negotiate("channel.k8s.io, v4.channel.k8s.io") == "v4.channel.k8s.io");
  CHECK(negotiate("base64.channel.k8s.io").empty());
  CHECK(negotiate("").empty());
}

TEST_CASE("frames: a channel byte, then the data", "[remotecommand]") {
  std::string f = frame(kStderr, "oops");
  CHECK(f == std::string("\x02oops", 5));
  CHECK(frame(kClose, std::string(1, '\0')) == std::string("\xff\x00", 2));
}

TEST_CASE("status documents, byte for byte", "[remotecommand]") {
  CHECK(success_status() == R"({"metadata":{},"status":"Success"})");
  CHECK(exit_status(3, {"sh", "-c", "exit 3"}) ==
        R"({"metadata":{},"status":"Failure","message":"command terminated with non-zero exit )"
        R"(code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode",)"
        R"("details":{"causes":[{"reason":"ExitCode","message":"3"}]}})");
}

TEST_CASE("status parsing gives the exit code", "[remotecommand]") {
  auto ok = parse_status(success_status());
  CHECK(ok.success);
  CHECK(ok.exit_code == 0);
  auto three = parse_status(exit_status(3, {"false"}));
  CHECK_FALSE(three.success);
  CHECK(three.exit_code == 3);
  auto other = parse_status(failure_status(500, "InternalError", "no such container"));
  CHECK_FALSE(other.success);
  CHECK(other.exit_code == 1);
  CHECK(other.message == "no such container");
  auto junk = parse_status("not json");
  CHECK_FALSE(junk.success);
  CHECK(junk.message == "not json");
}

TEST_CASE("resize messages", "[remotecommand]") {
  auto s = parse_resize(R"({"Width":120,"Height":40})");
  REQUIRE(s);
  CHECK(s->width == 120);
  CHECK(s->height == 40);
  CHECK(resize_json({80, 24}) == R"({"Width":80,"Height":24})");
  CHECK_FALSE(parse_resize("{}"));
  CHECK_FALSE(parse_resize(R"({"Width":-1,"Height":3})"));
}
