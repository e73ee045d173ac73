package policy

import "strings"

// knownMethods are the methods a rule may name; the index is the bit.
var knownMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

// methodBit maps a request method to its bit, 0 for a method no rule can
// name (such a request matches only rules without methods).
func methodBit(m string) uint16 {
	switch m {
	case "GET":
		return 1 << 0
	case "HEAD":
		return 1 << 1
	case "POST":
		return 1 << 2
	case "PUT":
		return 1 << 3
	case "PATCH":
		return 1 << 4
	case "DELETE":
		return 1 << 5
	case "OPTIONS":
		return 1 << 6
	case "CONNECT":
		return 1 << 7
	case "TRACE":
		return 1 << 8
	}
	for i, k := range knownMethods {
		if strings.EqualFold(m, k) {
			return 1 << i
		}
	}
	return 0
}

// Grant actions as written in a policy.
const (
	GrantList       = "list"
	GrantUse        = "use"
	GrantRetrieve   = "retrieve"
	GrantSign       = "sign"
	GrantEncrypt    = "encrypt"
	GrantDecrypt    = "decrypt"
	GrantHTTPHeader = "http_header"
	// GrantHTTPRequest is asked of Allowed, never written: "use" grants it.
	GrantHTTPRequest = "http_request"
)

// grantActions are the actions a grant may list.
var grantActions = []string{GrantList, GrantUse, GrantRetrieve, GrantSign, GrantEncrypt, GrantDecrypt, GrantHTTPHeader}

// actionBit maps an action asked of Allowed to its bit, 0 when unknown.
func actionBit(a string) uint16 {
	for i, k := range grantActions {
		if a == k {
			return 1 << i
		}
	}
	if a == GrantHTTPRequest {
		return 1 << len(grantActions)
	}
	return 0
}

// grantBits is what listing action a in a grant allows: "use" also allows
// sign, encrypt, decrypt and http_request, never retrieve or http_header.
func grantBits(a string) uint16 {
	if a == GrantUse {
		return actionBit(GrantUse) | actionBit(GrantSign) | actionBit(GrantEncrypt) |
			actionBit(GrantDecrypt) | actionBit(GrantHTTPRequest)
	}
	return actionBit(a)
}
