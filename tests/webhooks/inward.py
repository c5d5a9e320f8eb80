"""Hosts of webhook URLs that lead to this machine or its network in a form other than a plain address:
an IPv6 address carrying an IPv4 one, an IPv6 scope that is not public, a number the resolver reads as
an address. Each is written as it goes in a URL, with the address it leads to."""

INWARD_HOSTS = {
    # IPv6 forms carrying an IPv4 address, by the network that delivers it.
    "[::ffff:127.0.0.1]": "127.0.0.1",                 # IPv4-mapped: the socket connects to the IPv4 address
    "[::ffff:a9fe:a9fe]": "169.254.169.254",
    "[::127.0.0.1]": "127.0.0.1",                      # IPv4-compatible
    "[::a9fe:a9fe]": "169.254.169.254",
    "[::ffff:0:7f00:1]": "127.0.0.1",                  # IPv4-translated (SIIT)
    "[::ffff:0:a00:1]": "10.0.0.1",
    "[64:ff9b::7f00:1]": "127.0.0.1",                  # NAT64's well-known prefix
    "[64:ff9b::a9fe:a9fe]": "169.254.169.254",         # the cloud's metadata service, on a network with NAT64
    "[64:ff9b::10.0.0.1]": "10.0.0.1",
    "[64:ff9b:1::808:808]": "64:ff9b:1::808:808",      # NAT64 for local use: refused whole
    "[64:ff9b:1:7f00:1::]": "64:ff9b:1:7f00:1::",
    "[2002:7f00:1::]": "127.0.0.1",                    # 6to4
    "[2002:a9fe:a9fe::1]": "169.254.169.254",
    "[2001:0:7f00:1::f7f7:f7f7]": "127.0.0.1",         # Teredo, its server 127.0.0.1 (its client 8.8.8.8)
    "[2001:0:808:808:8000:63bf:80ff:fffe]": "127.0.0.1",  # Teredo, its client 127.0.0.1 (obfuscated)
    "[2606:4700::5efe:7f00:1]": "127.0.0.1",           # an ISATAP interface id
    "[2606:4700::200:5efe:a9fe:a9fe]": "169.254.169.254",
    # IPv6 scopes that are not public.
    "[::]": "::", "[::1]": "::1", "[fe80::1]": "fe80::1", "[fec0::1]": "fec0::1", "[fd00::1]": "fd00::1",
    "[ff02::1]": "ff02::1", "[ff0e::1]": "ff0e::1",
    "[fe80::1%25lo]": "fe80::1%25lo",                  # a zone id names an interface of this machine
    "[2606:4700:4700::1111%25lo]": "2606:4700:4700::1111%25lo",
    # Numbers the resolver (inet_aton, after IDNA) reads as an address.
    "2130706433": "127.0.0.1", "0x7f000001": "127.0.0.1", "0X7F000001": "127.0.0.1", "0177.0.0.1": "127.0.0.1",
    "127.1": "127.0.0.1", "0x7f.1": "127.0.0.1", "127.0.0.01": "127.0.0.1", "0": "0.0.0.0",
    "127.0.0.1.": "127.0.0.1", "2852039166": "169.254.169.254", "0xa9.0xfe.0xa9.0xfe": "169.254.169.254",
    "10.1": "10.0.0.1", "１２７.０.０.１": "127.0.0.1", "127。0。0。1": "127.0.0.1",
}
