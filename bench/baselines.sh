# The shell baselines of bench/run.sh: the chain of guests/chain built with `ip`, one command at
# a time, and with `ip -batch`. Sourced; every namespace is named nslab-bench-N.

ip_script() {  # N: the chain as plain `ip` commands, then its removal
    local n=$1 i
    for ((i = 0; i < n; i++)); do ip netns add "nslab-bench-$i"; done
    for ((i = 1; i < n; i++)); do
        local a="nslab-bench-$((i - 1))" b="nslab-bench-$i" hi=$(((i >> 6) & 255)) lo=$(((i & 63) << 2))
        ip link add right netns "$a" type veth peer left netns "$b"
        ip -n "$a" address add "10.$hi.$lo.1/30" dev right
        ip -n "$b" address add "10.$hi.$lo.2/30" dev left
        ip -n "$a" link set right up
        ip -n "$b" link set left up
    done
    for ((i = 0; i < n; i++)); do ip netns delete "nslab-bench-$i"; done
}

ip_batch() {  # N: the same with `ip -batch`: one batch for namespaces and veth pairs, then one
    # per namespace for its addresses and links (a batch cannot change namespace between lines)
    local n=$1 i
    {
        for ((i = 0; i < n; i++)); do echo "netns add nslab-bench-$i"; done
        for ((i = 1; i < n; i++)); do
            echo "link add right netns nslab-bench-$((i - 1)) type veth peer left netns nslab-bench-$i"
        done
    } | ip -batch -
    for ((i = 0; i < n; i++)); do
        local hi=$(((i >> 6) & 255)) lo=$(((i & 63) << 2)) nhi=$((((i + 1) >> 6) & 255)) nlo=$((((i + 1) & 63) << 2))
        {
            if ((i > 0)); then echo "address add 10.$hi.$lo.2/30 dev left"; echo "link set left up"; fi
            if ((i < n - 1)); then echo "address add 10.$nhi.$nlo.1/30 dev right"; echo "link set right up"; fi
        } | ip -n "nslab-bench-$i" -batch -
    done
    for ((i = 0; i < n; i++)); do echo "netns delete nslab-bench-$i"; done | ip -batch -
}

remove_bench_namespaces() {
    local ns
    for ns in $(ip netns list | awk '/^nslab-bench-/{print $1}'); do ip netns delete "$ns"; done
}

export -f ip_script ip_batch
