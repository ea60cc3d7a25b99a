"""More than one process or thread: data-parallel helpers (`distributed`), FSDP2 sharding (`sharding`) and the
CPU thread count chosen from the machine's load (`threads`)."""
