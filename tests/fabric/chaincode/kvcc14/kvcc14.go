// Command kvcc14 is ccdaemon's test chaincode for Fabric 1.4 peers: the same key/value
// store as ../kvcc, written for Fabric 1.4's Go shim in GOPATH style (no go.mod).
//
// The network kit (tests/fabricnet/legacy.py, LegacyNetwork.install) lays it out at
// test time in a GOPATH of the network's scratch directory, at the import path
// ccdaemon.test/kvcc14, beside variant.go, which it writes to set variant, so that two
// versions of the same code differ; `peer chaincode install -p ccdaemon.test/kvcc14`
// packages those two files only. The shim and its imports are not packaged with it: a
// 1.4 peer's builder image (fabric-ccenv:1.4, in the tests a stand-in built by
// tests/front/peer14.py) carries them in /opt/gopath/src.
//
// Functions (the first argument; the rest are its parameters):
//
//	init [KEY VALUE]  mark the chaincode initialised and put KEY (default "greeting");
//	                  instantiate and upgrade run it as the chaincode's Init
//	put KEY VALUE     put KEY
//	get KEY           the value of KEY; an error if it has none
//	del KEY           delete KEY
//	initialised       "true" once init ran, else "false"
//	variant           the variant of this version
//	say TEXT          write TEXT to stdout and to stderr, answer it
//	exit CODE         end the process with exit status CODE, answering nothing
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/hyperledger/fabric/core/chaincode/shim"
	pb "github.com/hyperledger/fabric/protos/peer"
)

// initKey records that init ran.
const initKey = "_initialised"

// store is the chaincode; it keeps no state of its own.
type store struct{}

// Init runs at instantiate and upgrade.
func (store) Init(stub shim.ChaincodeStubInterface) pb.Response {
	fn, args := stub.GetFunctionAndParameters()
	if fn != "init" {
		return shim.Error(fmt.Sprintf("instantiate must call init, not %q", fn))
	}
	return initialise(stub, args)
}

// Invoke runs every other transaction and query.
func (store) Invoke(stub shim.ChaincodeStubInterface) pb.Response {
	fn, args := stub.GetFunctionAndParameters()
	switch fn {
	case "init":
		return initialise(stub, args)
	case "put":
		if len(args) != 2 {
			return shim.Error("put takes KEY VALUE")
		}
		if err := stub.PutState(args[0], []byte(args[1])); err != nil {
			return shim.Error(err.Error())
		}
		return shim.Success(nil)
	case "get":
		if len(args) != 1 {
			return shim.Error("get takes KEY")
		}
		value, err := stub.GetState(args[0])
		if err != nil {
			return shim.Error(err.Error())
		}
		if value == nil {
			return shim.Error(fmt.Sprintf("no such key: %s", args[0]))
		}
		return shim.Success(value)
	case "del":
		if len(args) != 1 {
			return shim.Error("del takes KEY")
		}
		if err := stub.DelState(args[0]); err != nil {
			return shim.Error(err.Error())
		}
		return shim.Success(nil)
	case "initialised":
		value, err := stub.GetState(initKey)
		if err != nil {
			return shim.Error(err.Error())
		}
		return shim.Success([]byte(strconv.FormatBool(value != nil)))
	case "variant":
		return shim.Success([]byte(variant))
	case "say":
		if len(args) != 1 {
			return shim.Error("say takes TEXT")
		}
		fmt.Fprintln(os.Stdout, args[0])
		fmt.Fprintln(os.Stderr, args[0])
		return shim.Success([]byte(args[0]))
	case "exit":
		if len(args) != 1 {
			return shim.Error("exit takes CODE")
		}
		code, err := strconv.Atoi(args[0])
		if err != nil || code < 0 || code > 255 {
			return shim.Error(fmt.Sprintf("exit code %q is not 0-255", args[0]))
		}
		fmt.Fprintf(os.Stderr, "exiting with %d on request\n", code)
		os.Exit(code)
	}
	return shim.Error(fmt.Sprintf("unknown function %q", fn))
}

// initialise marks the chaincode initialised and puts its first key.
func initialise(stub shim.ChaincodeStubInterface, args []string) pb.Response {
	key, value := "greeting", "hello"
	switch len(args) {
	case 0:
	case 2:
		key, value = args[0], args[1]
	default:
		return shim.Error("init takes no arguments or KEY VALUE")
	}
	if err := stub.PutState(initKey, []byte("true")); err != nil {
		return shim.Error(err.Error())
	}
	if err := stub.PutState(key, []byte(value)); err != nil {
		return shim.Error(err.Error())
	}
	return shim.Success(nil)
}

func main() {
	if err := shim.Start(store{}); err != nil {
		fmt.Fprintf(os.Stderr, "kvcc14: %s\n", err)
		os.Exit(1)
	}
}
