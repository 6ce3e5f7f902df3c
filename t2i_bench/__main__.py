from t2i_bench.cli import main

main()
