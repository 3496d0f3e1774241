#include "common/http/auth.h"

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <unistd.h>

using skiff::web::Identity;
using skiff::web::is_public_path;
using skiff::web::TokenAuthenticator;

TEST_CASE("token file in Kubernetes CSV format", "[auth]") {
  TokenAuthenticator a;
  REQUIRE(a.load_csv("tok1,alice,uid-1,\"dev,ops\"\n"
                     "\n"
                     "tok2, bob ,uid-2\n"
                     "tok3,carol,uid-3,\"solo\"\r\n",
                     "tokens.csv")
              .is_ok());
  REQUIRE(a.size() == 3);

  auto alice = a.authenticate("Bearer tok1");
  REQUIRE(alice);
  CHECK(alice->user == "alice");
  CHECK(alice->uid == "uid-1");
  CHECK(alice->groups == std::vector<std::string>{"dev", "ops", "system:authenticated"});

  auto bob = a.authenticate("bearer tok2");  // scheme without regard to case
  REQUIRE(bob);
  CHECK(bob->user == "bob");
  CHECK(bob->groups == std::vector<std::string>{"system:authenticated"});

  auto carol = a.authenticate("Bearer tok3");
  REQUIRE(carol);
  CHECK(carol->groups == std::vector<std::string>{"solo", "system:authenticated"});

  CHECK_FALSE(a.authenticate("Bearer tok"));      // a prefix of a token
  CHECK_FALSE(a.authenticate("Bearer tok1x"));    // a token with a suffix
  CHECK_FALSE(a.authenticate("Basic dG9rMQ=="));  // another scheme
  CHECK_FALSE(a.authenticate("Bearer "));
  CHECK_FALSE(a.authenticate("tok1"));
}

TEST_CASE("token file errors name the line", "[auth]") {
  TokenAuthenticator a;
  auto st = a.load_csv("good,u,1\nbad,only-two\n", "t.csv");
  REQUIRE_FALSE(st.is_ok());
  CHECK(st.message().find("t.csv:2") != std::string::npos);
  CHECK(a.size() == 0);  // all or nothing

  auto q = a.load_csv("tok,u,1,\"unterminated\n", "q.csv");
  CHECK_FALSE(q.is_ok());
}

TEST_CASE("load_file and added tokens", "[auth]") {
  char path[] = "/tmp/skiff-auth-test-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  {
    std::ofstream(path) << "filetok,dave,uid-9,\"system:masters\"\n";
  }
  TokenAuthenticator a;
  REQUIRE(a.load_file(path).is_ok());
  unlink(path);
  a.add("admintok", Identity{"admin", "", {"system:masters"}});
  auto d = a.authenticate("Bearer filetok");
  REQUIRE(d);
  CHECK(d->user == "dave");
  auto ad = a.authenticate("Bearer admintok");
  REQUIRE(ad);
  CHECK(ad->user == "admin");
  CHECK(ad->groups.front() == "system:masters");
  // Replacing a token keeps one entry.
  a.add("admintok", Identity{"admin2", "", {}});
  CHECK(a.authenticate("Bearer admintok")->user == "admin2");
  CHECK(a.size() == 2);

  TokenAuthenticator b;
  CHECK_FALSE(b.load_file("/nonexistent/skiff/tokens.csv").is_ok());
}

TEST_CASE("public paths", "[auth]") {
  CHECK(is_public_path("/healthz"));
  CHECK(is_public_path("/readyz"));
  CHECK(is_public_path("/livez"));
  CHECK(is_public_path("/version"));
  CHECK(is_public_path("/healthz/ping"));
  CHECK_FALSE(is_public_path("/api/v1/pods"));
  CHECK_FALSE(is_public_path("/healthzz"));
  CHECK_FALSE(is_public_path("/metrics"));
}
