// Package grouptest is the conformance suite of the verity.Groups contract (persistent
// subscriptions). Every implementation runs it: the embedded Manager of package
// persistent, and the network client against a server. It uses only verity.Groups and
// verity.Store, waits on conditions with deadlines, and keeps timeouts short.
//
//	func TestGroups(t *testing.T) {
//		grouptest.Run(t, grouptest.Harness{New: newGroups, Reopen: reopenGroups})
//	}
package grouptest
