package stack

// Kill stops s as a SIGKILL would (see crash). release, when set, is
// called once the events not handled yet are lost, to let go an EventTap
// that holds them.
func Kill(s *Stack, release func()) {
	s.killed.Store(true)
	if release != nil {
		release()
	}
	s.crash()
}
