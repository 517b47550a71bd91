package main

import (
	"os"
	"strconv"

	"github.com/imagesvc/imagesvc/internal/testenv"
)

func main() {
	w, _ := strconv.Atoi(os.Args[1])
	h, _ := strconv.Atoi(os.Args[2])
	os.WriteFile(os.Args[3], testenv.PhotoJPEG(w, h), 0o644)
}
