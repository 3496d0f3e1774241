#include "proto/validation.h"

#include <catch2/catch.hpp>

namespace skiff::proto {
namespace {

using Msgs = std::vector<std::string>;

TEST_CASE("dns1123 subdomain: rules and Kubernetes' exact messages") {
  CHECK(is_dns1123_subdomain("example.com").empty());
  CHECK(is_dns1123_subdomain("a").empty());
  CHECK(is_dns1123_subdomain("web-1.default.svc").empty());
  const std::string regex_msg =
      "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
      "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
      "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
  for (const char* bad : {"Foo", "", "-a", "a-", "a..b", ".a", "a.", "a_b", "a.-b"}) {
    INFO(bad);
    CHECK(is_dns1123_subdomain(bad) == Msgs{regex_msg});
  }
  CHECK(is_dns1123_subdomain(std::string(253, 'a')).empty());
  CHECK(is_dns1123_subdomain(std::string(254, 'a')) == Msgs{"must be no more than 253 characters"});
  CHECK(is_dns1123_subdomain(std::string(254, 'A')).size() == 2);
}

TEST_CASE("dns1123 label and dns1035 label") {
  CHECK(is_dns1123_label("my-name").empty());
  CHECK(is_dns1123_label("123-abc").empty());
  CHECK(is_dns1123_label("a.b") == Msgs{"must not contain dots"});
  CHECK(is_dns1123_label("A") ==
        Msgs{"a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
             "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
             "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"});
  CHECK(is_dns1123_label(std::string(64, 'a')) == Msgs{"must be no more than 63 characters"});
  CHECK(is_dns1035_label("web").empty());
  CHECK(is_dns1035_label("1web") ==
        Msgs{"a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
             "with an alphabetic character, and end with an alphanumeric character (e.g. "
             "'my-name',  or 'abc-123', regex used for validation is "
             "'[a-z]([-a-z0-9]*[a-z0-9])?')"});
}

TEST_CASE("qualified names, with and without a DNS prefix") {
  for (const char* ok : {"app", "MyName", "my.name", "123-abc", "example.com/MyName",
                         "kubernetes.io/hostname", "a_b"}) {
    INFO(ok);
    CHECK(is_qualified_name(ok).empty());
  }
  const std::string name_regex =
      "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
      "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
      "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
  CHECK(is_qualified_name("-app") == Msgs{name_regex});
  CHECK(is_qualified_name("") == Msgs{"name part must be non-empty", name_regex});
  CHECK(is_qualified_name(std::string(64, 'a')) ==
        Msgs{"name part must be no more than 63 characters"});
  CHECK(is_qualified_name("/app") == Msgs{"prefix part must be non-empty"});
  auto prefixed = is_qualified_name("Example.com/app");
  REQUIRE(prefixed.size() == 1);
  CHECK(prefixed[0].starts_with("prefix part a lowercase RFC 1123 subdomain must consist"));
  auto multi = is_qualified_name("a/b/c");
  REQUIRE(multi.size() == 1);
  CHECK(multi[0] ==
        "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must "
        "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
        "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') "
        "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')");
}

TEST_CASE("label values") {
  CHECK(is_valid_label_value("").empty());
  CHECK(is_valid_label_value("my_value").empty());
  CHECK(is_valid_label_value("1.2-3").empty());
  CHECK(is_valid_label_value("a b") ==
        Msgs{"a valid label must be an empty string or consist of alphanumeric characters, '-', "
             "'_' or '.', and must start and end with an alphanumeric character (e.g. "
             "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
             "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"});
  CHECK(is_valid_label_value(std::string(64, 'x')) == Msgs{"must be no more than 63 characters"});
  CHECK(is_valid_label_value("x-").size() == 1);
}

TEST_CASE("ports, port names, IPs, env var names, config map keys") {
  CHECK(is_valid_port_num(1).empty());
  CHECK(is_valid_port_num(65535).empty());
  CHECK(is_valid_port_num(0) == Msgs{"must be between 1 and 65535, inclusive"});
  CHECK(is_valid_port_num(65536) == Msgs{"must be between 1 and 65535, inclusive"});
  CHECK(is_valid_port_num(-1).size() == 1);

  CHECK(is_valid_port_name("http").empty());
  CHECK(is_valid_port_name("h2c-8080").empty());
  CHECK(is_valid_port_name("8080") == Msgs{"must contain at least one letter (a-z)"});
  CHECK(is_valid_port_name("a--b") == Msgs{"must not contain consecutive hyphens"});
  CHECK(is_valid_port_name("-ab") == Msgs{"must not begin or end with a hyphen"});
  CHECK(is_valid_port_name("HTTP") ==
        Msgs{"must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
             "must contain at least one letter (a-z)"});
  CHECK(is_valid_port_name("abcdefghijklmnop") == Msgs{"must be no more than 15 characters"});

  for (const char* ok :
       {"10.9.8.7", "0.0.0.0", "010.001.0.1", "::1", "2001:db8::ffff", "::ffff:10.0.0.1"}) {
    INFO(ok);
    CHECK(is_valid_ip(ok).empty());
  }
  for (const char* bad :
       {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "a.b.c.d", "1.2.3.4 ", ":::", "fe80::1%eth0"}) {
    INFO(bad);
    CHECK(is_valid_ip(bad) ==
          Msgs{"must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"});
  }

  CHECK(is_c_identifier("MY_VAR").empty());
  CHECK(is_c_identifier("my.env-name").empty());
  CHECK(is_c_identifier("1ABC").size() == 1);
  CHECK(is_c_identifier("A=B").size() == 1);
  CHECK(is_c_identifier("..") == Msgs{"must not be '..'"});

  CHECK(is_config_map_key("key.name").empty());
  CHECK(is_config_map_key("..key") == Msgs{"must not start with '..'"});
  CHECK(is_config_map_key("a/b") ==
        Msgs{"a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
             "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
             "'[-._a-zA-Z0-9]+')"});
  CHECK(is_config_map_key("").size() == 1);
}

TEST_CASE("validate_labels reports keys and values at the map's path") {
  FieldErrors errs;
  validate_labels({{"app", "web"}, {"bad key", "ok"}, {"tier", "-x"}}, Path("metadata.labels"),
                  errs);
  REQUIRE(errs.size() == 2);
  CHECK(errs[0].type == ErrorType::kInvalid);
  CHECK(errs[0].field == "metadata.labels");
  CHECK(errs[0].value == "\"bad key\"");
  CHECK(errs[0].message().starts_with(
      "Invalid value: \"bad key\": name part must consist of alphanumeric characters"));
  CHECK(errs[1].value == "\"-x\"");
  CHECK(errs[1].detail.starts_with("a valid label must be an empty string"));
}

TEST_CASE("validate_annotations: keys case-insensitive, total size limit") {
  FieldErrors errs;
  validate_annotations({{"Example.com/Note", "x"}, {"kubectl.kubernetes.io/last", "{}"}},
                       Path("metadata.annotations"), errs);
  CHECK(errs.empty());
  validate_annotations({{"a b", "x"}}, Path("metadata.annotations"), errs);
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].field == "metadata.annotations");

  errs.clear();
  validate_annotations({{"a", std::string(262144 - 1, 'x')}}, Path("metadata.annotations"), errs);
  CHECK(errs.empty());
  validate_annotations({{"a", std::string(262144, 'x')}}, Path("metadata.annotations"), errs);
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].type == ErrorType::kTooLong);
  CHECK(errs[0].message() == "Too long: must have at most 262144 bytes");
}

}  // namespace
}  // namespace skiff::proto
