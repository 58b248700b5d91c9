# Shell functions bench/run.sh and bench/compare.sh share (sourced).

# registry_config DIR PORT DATABASE: writes DIR/twostep.toml, a registry on
# 127.0.0.1:PORT over DATABASE (a URL) with its key and admin token in DIR.
registry_config() {
    cat > "$1/twostep.toml" <<EOF2
version = 1

[api]
listen = "127.0.0.1:$2"
database = "$3"
secret_key_file = "$1/secret.key"
admin_token_file = "$1/admin.token"
EOF2
}
