package tailnet

// udpPort returns the UDP port tsnet should bind.
func (n *Node) udpPort() (uint16, error) { return n.cfg.Port, nil }
